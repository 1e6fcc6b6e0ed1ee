//! Feeds arbitrary bytes to the GRIB2 reader: any result is fine, a panic is not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gridcast_grid::grib2_from_bytes(data);
});
