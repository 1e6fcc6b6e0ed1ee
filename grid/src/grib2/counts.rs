//! Checks the counts that Section 5 declares against the grid and Section 7 before
//! the grib crate decodes a field.
//!
//! The grib crate 0.20.2 trusts the group lengths of complex packing (templates 5.2
//! and 5.3). `ComplexPackingValueDecodeIterator::next` allocates each constant
//! group (group width 0, so no bits in Section 7) whole with `vec![value; length]`,
//! so a corrupt length of 3.3e9 requests 27 GB. The crate checks that the packed
//! values fit in Section 7 but not that the group lengths fit the field. Requiring
//! the group lengths to add up to the number of data points, which must match the
//! grid, bounds every allocation by the grid size.
//!
//! Octets below are 1-based as in the WMO GRIB2 Section 5 and templates 5.0, 5.2,
//! 5.3, 7.2 and 7.3, so octet `n` is `sect5[n - 1]`.

use super::SectionBytes;

/// Checks the data point count of Section 5 (octets 6-9) against the grid and the
/// bitmap. For complex packing it also checks the group count, the descriptor sizes
/// and every group length.
pub(super) fn check_declared_counts(
    sections: &SectionBytes,
    grid_points: usize,
) -> Result<(), String> {
    let sect5 = &sections.sect5;
    if sect5.len() < 11 {
        return Err(format!(
            "Section 5 has {} bytes; it needs at least 11",
            sect5.len()
        ));
    }
    let data_points = u32_at(sect5, 6) as usize;
    let template = u16::from_be_bytes([sect5[9], sect5[10]]);

    // Bitmap indicator (octet 6 of Section 6): 0 means a bitmap follows, 255 means
    // none. A reused bitmap (254) was already resolved to the earlier one. The grib
    // crate rejects the other indicators as unsupported before decoding.
    let (expected, meaning) = match sections.sect6[5] {
        0 => (
            set_bits(&sections.sect6[6..], grid_points)?,
            "bitmap-set points",
        ),
        255 => (grid_points, "grid points and no bitmap"),
        _ => return Ok(()),
    };
    if data_points != expected {
        return Err(format!(
            "Section 5 declares {data_points} data points (octets 6-9), but the field has \
             {expected} {meaning}, and the two must be equal"
        ));
    }

    match template {
        2 => check_complex_packing(sections, data_points, 0),
        3 => {
            let extra_octets = spatial_differencing_octets(sect5)?;
            check_complex_packing(sections, data_points, extra_octets)
        }
        _ => Ok(()),
    }
}

/// Counts the set bits among the first `grid_points` bits of a bitmap.
fn set_bits(bitmap: &[u8], grid_points: usize) -> Result<usize, String> {
    let full_octets = grid_points / 8;
    let remaining_bits = grid_points % 8;
    let needed = full_octets + usize::from(remaining_bits > 0);
    if bitmap.len() < needed {
        return Err(format!(
            "the bitmap has {} bytes, but a grid of {grid_points} points needs {needed}",
            bitmap.len()
        ));
    }
    let mut count: usize = bitmap[..full_octets]
        .iter()
        .map(|octet| octet.count_ones() as usize)
        .sum();
    if remaining_bits > 0 {
        count += (bitmap[full_octets] >> (8 - remaining_bits)).count_ones() as usize;
    }
    Ok(count)
}

/// Returns the size in octets of the extra descriptors (first values and overall
/// minimum of the differences) that template 7.3 puts before the group descriptors.
fn spatial_differencing_octets(sect5: &[u8]) -> Result<usize, String> {
    if sect5.len() < 49 {
        return Err(format!(
            "Section 5 has {} bytes; template 5.3 needs 49",
            sect5.len()
        ));
    }
    // Octet 48: order of spatial differencing (code table 5.6).
    let order = sect5[47];
    if !(1..=2).contains(&order) {
        return Err(format!(
            "order of spatial differencing (octet 48 of Section 5) is {order}; \
             supported: 1 (first order) or 2 (second order)"
        ));
    }
    // Octet 49: octets per extra descriptor.
    let octets = sect5[48];
    if !(1..=4).contains(&octets) {
        return Err(format!(
            "octets per spatial differencing descriptor (octet 49 of Section 5) is \
             {octets}; valid values are 1 to 4"
        ));
    }
    Ok((usize::from(order) + 1) * usize::from(octets))
}

/// Checks the group descriptors of complex packing, which start `extra_octets` into
/// the Section 7 payload, against the `data_points` of Section 5.
fn check_complex_packing(
    sections: &SectionBytes,
    data_points: usize,
    extra_octets: usize,
) -> Result<(), String> {
    let sect5 = &sections.sect5;
    if sect5.len() < 47 {
        return Err(format!(
            "Section 5 has {} bytes; complex packing needs at least 47",
            sect5.len()
        ));
    }
    // Octet 22: group splitting method (code table 5.4). The grib crate supports
    // only 1 (general group splitting) and rejects the others before decoding.
    if sect5[21] != 1 {
        return Ok(());
    }

    let reference_bits = bit_count(sect5, 20, "bits per group reference value")?;
    let width_bits = bit_count(sect5, 37, "bits per group width")?;
    let length_bits = bit_count(sect5, 47, "bits per scaled group length")?;

    // Octets 32-35: NG, the number of groups.
    let groups = u32_at(sect5, 32) as usize;
    if groups == 0 || groups > data_points {
        return Err(format!(
            "number of groups NG (octets 32-35 of Section 5) is {groups}; valid values \
             are 1 to the {data_points} data points"
        ));
    }
    // Octets 43-46: true length of the last group, stored in Section 5 itself.
    let last_length = u64::from(u32_at(sect5, 43));
    if last_length > data_points as u64 {
        return Err(format!(
            "length of the last group (octets 43-46 of Section 5) is {last_length}; \
             it cannot exceed the {data_points} data points"
        ));
    }

    // Section 7 payload (from octet 6): extra descriptors, then NG reference values,
    // NG widths and NG scaled lengths, each array padded to whole octets, then the
    // packed values.
    let payload = sections.sect7.get(5..).unwrap_or_default();
    let array_octets = |bits: u8| (groups as u64 * u64::from(bits)).div_ceil(8) as usize;
    let widths_start = extra_octets + array_octets(reference_bits);
    let lengths_start = widths_start + array_octets(width_bits);
    let values_start = lengths_start + array_octets(length_bits);
    if values_start > payload.len() {
        return Err(format!(
            "the descriptors of {groups} groups need {values_start} bytes of Section 7 \
             data, but it has {}",
            payload.len()
        ));
    }
    let widths = &payload[widths_start..lengths_start];
    let lengths = &payload[lengths_start..values_start];

    // Octet 36: reference for group widths. Octets 38-41 and 42: reference and
    // increment for group lengths, so a group length is reference + increment *
    // scaled length.
    let width_reference = u64::from(sect5[35]);
    let length_reference = u64::from(u32_at(sect5, 38));
    let length_increment = u64::from(sect5[41]);
    let mut total_length = 0u64;
    let mut value_bits = 0u64;
    for group in 0..groups {
        let length = if group + 1 == groups {
            last_length
        } else {
            length_reference + length_increment * read_bits(lengths, group, length_bits)
        };
        total_length += length;
        if total_length > data_points as u64 {
            return Err(format!(
                "group lengths add up to more than the {data_points} data points of \
                 Section 5 at group {} of {groups} (length {length})",
                group + 1
            ));
        }
        let width = width_reference + read_bits(widths, group, width_bits);
        value_bits += width * length;
    }
    if total_length != data_points as u64 {
        return Err(format!(
            "group lengths add up to {total_length}, but Section 5 declares \
             {data_points} data points, and the two must be equal"
        ));
    }
    let value_octets = value_bits.div_ceil(8);
    let available = (payload.len() - values_start) as u64;
    if value_octets > available {
        return Err(format!(
            "the packed values need {value_octets} bytes, but Section 7 has {available} \
             after the group descriptors"
        ));
    }
    Ok(())
}

/// Reads the bit count at Section 5 octet `octet`, which must be at most 32 because
/// the values it sizes are 32-bit unsigned integers.
fn bit_count(sect5: &[u8], octet: usize, name: &str) -> Result<u8, String> {
    let bits = sect5[octet - 1];
    if bits > 32 {
        return Err(format!(
            "{name} (octet {octet} of Section 5) is {bits}; valid values are 0 to 32"
        ));
    }
    Ok(bits)
}

/// Reads the big-endian u32 at octets `octet` to `octet + 3`.
fn u32_at(section: &[u8], octet: usize) -> u32 {
    let start = octet - 1;
    u32::from_be_bytes([
        section[start],
        section[start + 1],
        section[start + 2],
        section[start + 3],
    ])
}

/// Reads entry `index` of an array of `width`-bit unsigned integers packed
/// big-endian. The caller checks that the array covers it.
fn read_bits(bytes: &[u8], index: usize, width: u8) -> u64 {
    let start = index as u64 * u64::from(width);
    (start..start + u64::from(width)).fold(0, |value, bit| {
        let octet = bytes[(bit / 8) as usize];
        (value << 1) | u64::from((octet >> (7 - bit % 8)) & 1)
    })
}

#[cfg(test)]
mod tests {
    use super::read_bits;

    #[test]
    fn read_bits_crosses_octets() {
        // 5-bit entries 0b10110, 0b01101, 0b00011, then one padding bit.
        let bytes = [0b1011_0011, 0b0100_0111, 0];
        assert_eq!(read_bits(&bytes, 0, 5), 0b10110);
        assert_eq!(read_bits(&bytes, 1, 5), 0b01101);
        assert_eq!(read_bits(&bytes, 2, 5), 0b00011);
        assert_eq!(read_bits(&bytes, 7, 0), 0);
    }
}
