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
    /// Starts the server and creates `bucket` on it.
    pub fn start(bucket: &str) -> S3Server {
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
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server.create_bucket(port, bucket);
        server
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

    fn create_bucket(&self, port: u16, bucket: &str) {
        // moto accepts unsigned requests, so a bare HTTP PUT creates the bucket.
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to moto");
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .expect("send create-bucket request");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read reply");
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "creating bucket {bucket} failed: {reply}"
        );
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
