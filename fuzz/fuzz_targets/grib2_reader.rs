//! Feeds arbitrary bytes to the GRIB2 reader: any result is fine, a panic is not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader turns panics inside the grib crate into errors with catch_unwind,
    // but libfuzzer's panic hook aborts first. A silent hook lets those count as
    // handled. A panic that escapes the reader is still reported as a crash, because
    // libfuzzer-sys aborts when the target function panics. Set FUZZ_GRIB_PANICS to
    // keep libfuzzer's hook and find the handled panics too.
    if std::env::var_os("FUZZ_GRIB_PANICS").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let _ = gridcast_grid::grib2_from_bytes(data);
});
