//! Feeds arbitrary bytes to the netCDF-3 reader: any result is fine, a panic is not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gridcast_grid::netcdf_from_bytes(data);
});
