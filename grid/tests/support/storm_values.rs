//! Patches a value into a copy of the storm-1996 `Tstorm.cdf`, for tests of corrupt
//! data. Shared by the grid and engine tests through `#[path]`.

/// Overwrites the first cell of step `step` of `t` in the bytes of `Tstorm.cdf`. The
/// file stores `t` south to north and west to east, as the reader returns it, so the
/// reader's first 16 values of the step (fill -9999 where missing) locate it.
pub fn set_storm_t_value(bytes: &mut [u8], step: usize, value: f32) {
    let file = gridcast_grid::netcdf_from_bytes(bytes).unwrap();
    let t = file.variables.iter().find(|v| v.name == "t").unwrap();
    let start = step * file.grid.ny() * file.grid.nx();
    let stored: Vec<u8> = t.data[start..start + 16]
        .iter()
        .map(|v| if v.is_nan() { -9999.0_f32 } else { *v })
        .flat_map(f32::to_be_bytes)
        .collect();
    let offset = bytes
        .windows(stored.len())
        .position(|w| w == stored.as_slice())
        .expect("the first 16 values of the step are stored in order");
    bytes[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
}
