//! A real S3-compatible server for tests: `moto_server` from PyPI (`moto[server]`, which
//! `scripts/test.sh` installs), started on a free loopback port and killed on drop. A
//! missing `moto_server` fails the test; it never skips.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    /// Starts the server and creates `bucket` on it. The free port is found by binding
    /// and releasing it, so another process can take it before moto does. moto then
    /// exits, and the server is started again on a new port.
    pub fn start(bucket: &str) -> S3Server {
        for _ in 0..5 {
            if let Some(server) = S3Server::try_start(bucket) {
                return server;
            }
        }
        panic!("moto_server exited at start 5 times; see whether ports are exhausted");
    }

    fn try_start(bucket: &str) -> Option<S3Server> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start moto_server ({err}): install it with \
                     `pip install -r scripts/requirements-test.txt` (scripts/test.sh does)"
                )
            });
        let mut server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        // Retry until moto creates the bucket, because a port that accepts connections
        // may still belong to another process, or moto may not serve HTTP yet.
        loop {
            if server.child.try_wait().expect("poll moto_server").is_some() {
                return None;
            }
            match server.create_bucket(port, bucket) {
                Ok(()) => return Some(server),
                Err(err) => assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "moto_server on port {port} did not create bucket {bucket} within 60 s: {err}"
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `object_store` settings that point an S3 store at this server.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", "gridcast-test"),
            ("aws_secret_access_key", "gridcast-test-secret"),
            ("aws_region", "us-east-1"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
    }

    /// Returns the same settings as the environment variables a gridcast process reads.
    pub fn env(&self) -> Vec<(String, String)> {
        self.options()
            .into_iter()
            .map(|(key, value)| (key.to_uppercase(), value))
            .collect()
    }

    /// Creates `bucket` with a bare HTTP PUT, which moto accepts unsigned.
    fn create_bucket(&self, port: u16, bucket: &str) -> Result<(), String> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|err| format!("connect: {err}"))?;
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .map_err(|err| format!("send: {err}"))?;
        let mut reply = String::new();
        stream
            .read_to_string(&mut reply)
            .map_err(|err| format!("read: {err}"))?;
        if reply.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!("creating bucket {bucket} failed: {reply}"))
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
