//! Regular latitude/longitude grids in canonical order, and bounding-box regions on them.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::GridError;

/// Tolerance in degrees when comparing coordinates. Coordinates stored as f32 carry
/// about 1e-5 degrees of rounding at 180 degrees, so this is well above that.
pub(crate) const COORD_TOLERANCE_DEG: f64 = 1e-4;

/// A regular latitude/longitude grid in canonical order (see the crate docs).
///
/// `lat` is strictly ascending (south to north). `lon` is ascending and evenly spaced,
/// its first value is in [-180, 180) and later values pass 180 only on a regional grid
/// that crosses the antimeridian. Both are in degrees.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
}

/// A latitude/longitude bounding box in degrees, edges included.
///
/// `west > east` means the box crosses the antimeridian (west 170, east -170 covers
/// 20 degrees of longitude).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub south: f64,
    pub north: f64,
    pub west: f64,
    pub east: f64,
}

/// Grid indices that fall inside a [`Region`].
///
/// `lat` is a range of ascending row indices. `lon` lists column indices from west to
/// east; on a global grid it may wrap from the last column to the first.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionIndices {
    pub lat: Range<usize>,
    pub lon: Vec<usize>,
}

impl Region {
    /// Checks that the box is finite, `south <= north`, both latitudes are within
    /// [-90, 90] and both longitudes are within [-360, 360].
    pub fn validate(&self) -> Result<(), GridError> {
        let fail = |detail: &str| {
            Err(GridError::InvalidRegion {
                region: self.to_string(),
                detail: detail.to_owned(),
            })
        };
        let all = [self.south, self.north, self.west, self.east];
        if all.iter().any(|v| !v.is_finite()) {
            return fail("every edge must be a finite number of degrees");
        }
        if self.south > self.north {
            return fail("south must not exceed north; swap the two values");
        }
        if self.south.abs() > 90.0 || self.north.abs() > 90.0 {
            return fail("latitudes must be within -90..=90 degrees");
        }
        if self.west.abs() > 360.0 || self.east.abs() > 360.0 {
            return fail("longitudes must be within -360..=360 degrees");
        }
        Ok(())
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(south {}, north {}, west {}, east {})",
            Degrees(self.south),
            Degrees(self.north),
            Degrees(self.west),
            Degrees(self.east)
        )
    }
}

/// An edge in degrees as messages print it: plain for any real coordinate, and in
/// exponent form from 1e6 on, so that a value such as 1e308 does not fill a message
/// with 309 digits.
struct Degrees(f64);

impl std::fmt::Display for Degrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.abs() >= 1e6 {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Grid {
    /// Number of latitude rows.
    pub fn ny(&self) -> usize {
        self.lat.len()
    }

    /// Number of longitude columns.
    pub fn nx(&self) -> usize {
        self.lon.len()
    }

    /// Longitude spacing in degrees, or 0 for a grid with fewer than two columns.
    pub fn dlon(&self) -> f64 {
        match self.lon.as_slice() {
            [first, second, ..] => second - first,
            _ => 0.0,
        }
    }

    /// Returns whether the columns cover the full circle, so that column `nx - 1` is followed
    /// by column 0.
    pub fn is_global_lon(&self) -> bool {
        let dlon = self.dlon();
        dlon > 0.0 && ((self.nx() as f64) * dlon - 360.0).abs() < COORD_TOLERANCE_DEG * 10.0
    }

    /// Describes each axis as start, step and count for error messages, such as
    /// `lat 20 to 60 every 1.25 degrees (33 rows), lon -140 to -52.5 every 2.5
    /// degrees (36 columns)`.
    pub fn describe(&self) -> String {
        format!(
            "lat {}, lon {}",
            describe_axis(&self.lat, "rows"),
            describe_axis(&self.lon, "columns")
        )
    }

    /// Describes the domain as `lat A..B, lon C..D` for error messages.
    pub fn domain(&self) -> String {
        let (Some(s), Some(n), Some(w), Some(e)) = (
            self.lat.first(),
            self.lat.last(),
            self.lon.first(),
            self.lon.last(),
        ) else {
            return "empty grid".to_owned();
        };
        let global = if self.is_global_lon() {
            " (global)"
        } else {
            ""
        };
        format!("lat {s}..{n}, lon {w}..{e}{global}")
    }

    /// Finds the rows and columns inside `region`.
    ///
    /// The region must lie inside the grid's latitude range and, on a regional grid,
    /// inside its longitude range. On a global grid any longitudes work and the
    /// columns wrap when the region crosses the grid's seam. A region inside the domain
    /// that falls between two rows or columns is a
    /// [`GridError::RegionWithoutGridPoint`], which names them.
    pub fn region_indices(&self, region: &Region) -> Result<RegionIndices, GridError> {
        region.validate()?;
        let lat = self.lat_indices(region)?;
        let lon = if self.is_global_lon() {
            self.lon_indices_global(region)
        } else {
            self.lon_indices_regional(region)?
        };
        if lon.is_empty() {
            return Err(self.between_columns(region));
        }
        Ok(RegionIndices { lat, lon })
    }

    /// Describes a region that lies between two rows: the rows on either side of it.
    fn between_rows(&self, region: &Region, north_row: usize) -> GridError {
        let south_row = north_row.saturating_sub(1);
        let (Some(&below), Some(&above)) = (self.lat.get(south_row), self.lat.get(north_row))
        else {
            return self.outside(region, "no grid row lies between south and north");
        };
        GridError::RegionWithoutGridPoint {
            region: region.to_string(),
            axis: "a row",
            detail: format!(
                "south {} and north {} lie between row {south_row} at lat {below} and row \
                 {north_row} at lat {above}, and rows are {} degrees apart",
                region.south,
                region.north,
                above - below
            ),
        }
    }

    /// Describes a region that lies inside the domain but between two columns: the
    /// columns on either side of its west edge.
    fn between_columns(&self, region: &Region) -> GridError {
        let (Some(&first), nx) = (self.lon.first(), self.nx()) else {
            return self.outside(region, "the grid has no columns");
        };
        // Move `west` into [first, first + 360) so it is comparable with the columns.
        let west = first + (region.west - first).rem_euclid(360.0);
        let east_col = self.lon.partition_point(|&x| x < west);
        let (west_col, east_col) = match east_col {
            0 => (nx - 1, 0),
            k if k >= nx => (nx - 1, 0),
            k => (k - 1, k),
        };
        GridError::RegionWithoutGridPoint {
            region: region.to_string(),
            axis: "a column",
            detail: format!(
                "west {} and east {} lie between column {west_col} at lon {} and column \
                 {east_col} at lon {}, and columns are {} degrees apart",
                region.west,
                region.east,
                self.lon[west_col],
                self.lon[east_col],
                self.dlon()
            ),
        }
    }

    fn outside(&self, region: &Region, detail: &str) -> GridError {
        GridError::RegionOutsideDomain {
            region: region.to_string(),
            domain: self.domain(),
            detail: detail.to_owned(),
        }
    }

    fn lat_indices(&self, region: &Region) -> Result<Range<usize>, GridError> {
        let (Some(&first), Some(&last)) = (self.lat.first(), self.lat.last()) else {
            return Err(self.outside(region, "the grid has no rows"));
        };
        let tol = COORD_TOLERANCE_DEG;
        if region.south < first - tol || region.north > last + tol {
            return Err(self.outside(region, "south and north must lie inside the domain"));
        }
        let start = self.lat.partition_point(|&y| y < region.south - tol);
        let end = self.lat.partition_point(|&y| y <= region.north + tol);
        if start >= end {
            return Err(self.between_rows(region, start));
        }
        Ok(start..end)
    }

    /// Columns whose longitude lies east of `west` by at most the region's width,
    /// sorted by that distance so that the result runs west to east and wraps.
    fn lon_indices_global(&self, region: &Region) -> Vec<usize> {
        let width = region_width(region);
        let mut picked: Vec<(f64, usize)> = self
            .lon
            .iter()
            .enumerate()
            .map(|(i, &x)| ((x - region.west).rem_euclid(360.0), i))
            .map(|(offset, i)| {
                // A column a hair west of `west` counts as on the edge.
                if 360.0 - offset < COORD_TOLERANCE_DEG {
                    (0.0, i)
                } else {
                    (offset, i)
                }
            })
            .filter(|&(offset, _)| offset <= width + COORD_TOLERANCE_DEG)
            .collect();
        picked.sort_by(|a, b| a.0.total_cmp(&b.0));
        picked.into_iter().map(|(_, i)| i).collect()
    }

    fn lon_indices_regional(&self, region: &Region) -> Result<Vec<usize>, GridError> {
        let (Some(&first), Some(&last)) = (self.lon.first(), self.lon.last()) else {
            return Err(self.outside(region, "the grid has no columns"));
        };
        let tol = COORD_TOLERANCE_DEG;
        // Move `west` into [first, first + 360) so it is comparable with the columns.
        let west = first + (region.west - first + tol).rem_euclid(360.0) - tol;
        let east = west + region_width(region);
        if east > last + tol {
            if region.west > region.east {
                return Err(self.outside(
                    region,
                    &format!(
                        "west {} is greater than east {}, which means a region that \
                         crosses the antimeridian, and this regional grid does not wrap \
                         around it; swap west and east to select the region between them",
                        region.west, region.east
                    ),
                ));
            }
            return Err(self.outside(
                region,
                "west and east must lie inside the domain of this regional grid",
            ));
        }
        Ok((0..self.nx())
            .filter(|&i| self.lon[i] >= west - tol && self.lon[i] <= east + tol)
            .collect())
    }
}

/// Describes coordinates as `first to last every step degrees (count items)`, or as
/// unevenly spaced. Values are rounded to 1e-6 degrees, so f32 coordinates read as
/// written (20, not 20.000000298).
fn describe_axis(values: &[f64], items: &str) -> String {
    let round = |x: f64| (x * 1e6).round() / 1e6;
    let (Some(&first), Some(&last)) = (values.first(), values.last()) else {
        return format!("empty (0 {items})");
    };
    let n = values.len();
    if n == 1 {
        return format!("{} (a single value)", round(first));
    }
    let step = (last - first) / (n - 1) as f64;
    let even = values
        .windows(2)
        .all(|w| ((w[1] - w[0]) - step).abs() <= COORD_TOLERANCE_DEG);
    let spacing = if even {
        format!("every {} degrees", round(step))
    } else {
        "unevenly spaced".to_owned()
    };
    format!(
        "{} to {} {spacing} ({n} {items})",
        round(first),
        round(last)
    )
}

/// Width of the region in degrees of longitude, in [0, 360].
fn region_width(region: &Region) -> f64 {
    let width = region.east - region.west;
    if width >= 360.0 {
        360.0
    } else if width >= 0.0 {
        width
    } else {
        (width + 360.0).max(0.0)
    }
}

/// How to bring source data into canonical order: canonical row `j` comes from source
/// row `lat_src[j]`, canonical column `i` from source column `lon_src[i]`.
#[derive(Debug, Clone)]
pub(crate) struct Reorder {
    pub grid: Grid,
    pub lat_src: Vec<usize>,
    pub lon_src: Vec<usize>,
    /// Whether the source stores longitude as the slower (row) dimension.
    pub lon_major: bool,
}

impl Reorder {
    /// Builds the canonical grid from source coordinates in degrees.
    ///
    /// Latitude must be strictly monotonic. Longitude must be strictly monotonic and
    /// evenly spaced. A global longitude axis is rotated to start at the first column
    /// at or east of -180; a regional one is shifted by whole turns so that its first
    /// value lies in [-180, 180).
    pub fn new(lat: &[f64], lon: &[f64], lon_major: bool) -> Result<Reorder, GridError> {
        let lat_src = monotonic_order(lat, "latitude")?;
        check_latitude_range(lat).map_err(GridError::Coordinates)?;
        let lon_asc = monotonic_order(lon, "longitude")?;
        check_even_spacing(lon, &lon_asc)?;
        let lon_src = rotate_longitudes(lon, lon_asc);
        let grid = Grid {
            lat: lat_src.iter().map(|&j| lat[j]).collect(),
            lon: unwrap_longitudes(lon, &lon_src),
        };
        Ok(Reorder {
            grid,
            lat_src,
            lon_src,
            lon_major,
        })
    }

    /// Appends one 2-D source slice in canonical `[lat][lon]` order to `out`.
    pub fn push_slice(&self, src: &[f32], out: &mut Vec<f32>) {
        let nx = self.lon_src.len();
        let ny = self.lat_src.len();
        for &j in &self.lat_src {
            for &i in &self.lon_src {
                let index = if self.lon_major {
                    i * ny + j
                } else {
                    j * nx + i
                };
                out.push(src[index]);
            }
        }
    }
}

/// Rejects latitudes outside -90..90 degrees (with the coordinate tolerance), which only
/// a corrupt file stores. The message gives the axis range and advises fetching the file
/// again, and callers add the file name.
pub(crate) fn check_latitude_range(lat: &[f64]) -> Result<(), String> {
    if lat.iter().all(|y| y.abs() <= 90.0 + COORD_TOLERANCE_DEG) {
        return Ok(());
    }
    let min = lat.iter().copied().fold(f64::INFINITY, f64::min);
    let max = lat.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Err(format!(
        "latitude values must be within -90 to 90 degrees, but the latitude axis runs \
         from {} to {}; fetch or copy the file again",
        format_number(min),
        format_number(max)
    ))
}

/// Formats a number for a message: values from 1e-4 to 1e6 in magnitude rounded to
/// 1e-6 (so f32 coordinates read as written), others in exponent form such as 1e30.
pub(crate) fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || (1e-4..1e6).contains(&magnitude) {
        format!("{}", (value * 1e6).round() / 1e6)
    } else if magnitude.is_finite() && magnitude < f64::from(f32::MAX) {
        // Through f32, so a value stored as f32 prints as 1e30, not 1.0000000150474662e30.
        format!("{:e}", value as f32)
    } else {
        format!("{value:e}")
    }
}

/// Index order that sorts `values` ascending, which must be strictly monotonic.
fn monotonic_order(values: &[f64], what: &str) -> Result<Vec<usize>, GridError> {
    if values.is_empty() {
        return Err(GridError::Coordinates(format!("{what} axis is empty")));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(GridError::Coordinates(format!(
            "{what} axis contains a non-finite value"
        )));
    }
    let ascending = values.windows(2).all(|w| w[1] > w[0]);
    let descending = values.windows(2).all(|w| w[1] < w[0]);
    match (ascending, descending) {
        (true, _) => Ok((0..values.len()).collect()),
        (false, true) => Ok((0..values.len()).rev().collect()),
        _ => Err(GridError::Coordinates(format!(
            "{what} axis must be strictly increasing or decreasing"
        ))),
    }
}

fn check_even_spacing(lon: &[f64], order: &[usize]) -> Result<(), GridError> {
    if lon.len() < 3 {
        return Ok(());
    }
    let step = lon[order[1]] - lon[order[0]];
    // f32 coordinates drift by about 1e-5 degrees, so allow that much per step.
    let tolerance = (step * 1e-3).max(COORD_TOLERANCE_DEG);
    for pair in order.windows(2) {
        let delta = lon[pair[1]] - lon[pair[0]];
        if (delta - step).abs() > tolerance {
            return Err(GridError::Coordinates(format!(
                "longitude must be evenly spaced: step {step} then {delta} degrees"
            )));
        }
    }
    if step * (lon.len() as f64) > 360.0 + COORD_TOLERANCE_DEG * 10.0 {
        return Err(GridError::Coordinates(format!(
            "longitude axis of {} columns every {step} degrees covers more than 360 degrees",
            lon.len()
        )));
    }
    Ok(())
}

/// Rotates an ascending global axis so it starts at the column nearest east of -180.
/// Regional axes keep their ascending order.
fn rotate_longitudes(lon: &[f64], ascending: Vec<usize>) -> Vec<usize> {
    let n = ascending.len();
    let step = if n > 1 {
        lon[ascending[1]] - lon[ascending[0]]
    } else {
        0.0
    };
    let global = n > 1 && (step * n as f64 - 360.0).abs() < COORD_TOLERANCE_DEG * 10.0;
    if !global {
        return ascending;
    }
    let wrapped = |x: f64| (x + 180.0 + COORD_TOLERANCE_DEG).rem_euclid(360.0);
    let start = (0..n)
        .min_by(|&a, &b| wrapped(lon[ascending[a]]).total_cmp(&wrapped(lon[ascending[b]])))
        .unwrap_or(0);
    (0..n).map(|k| ascending[(start + k) % n]).collect()
}

/// Canonical longitude values: the first moved into [-180, 180) by whole turns, each
/// later one moved by whole turns to the first value above its predecessor.
fn unwrap_longitudes(lon: &[f64], order: &[usize]) -> Vec<f64> {
    let first = lon[order[0]];
    let turns = ((first + 180.0 + COORD_TOLERANCE_DEG) / 360.0).floor();
    let mut previous = first - 360.0 * turns;
    let mut out = Vec::with_capacity(order.len());
    out.push(previous);
    for &src in &order[1..] {
        let value = lon[src];
        let turns = ((previous - value) / 360.0).floor() + 1.0;
        previous = value + 360.0 * turns;
        out.push(previous);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_edges_print_short() {
        let region = Region {
            south: 1e308,
            north: 50.0,
            west: -120.5,
            east: -1e7,
        };
        assert_eq!(
            region.to_string(),
            "(south 1e308, north 50, west -120.5, east -1e7)"
        );
    }

    fn global_3deg() -> Grid {
        Grid {
            lat: (0..61).map(|j| -90.0 + 3.0 * j as f64).collect(),
            lon: (0..120).map(|i| -180.0 + 3.0 * i as f64).collect(),
        }
    }

    #[test]
    fn rotation_of_0_to_360_axis() {
        let lon: Vec<f64> = (0..144).map(|i| 2.5 * i as f64).collect();
        let lat = [90.0, 0.0, -90.0];
        let r = Reorder::new(&lat, &lon, false).unwrap();
        assert_eq!(r.grid.lon[0], -180.0);
        assert_eq!(r.grid.lon[143], 177.5);
        assert_eq!(r.lon_src[0], 72);
        assert_eq!(r.grid.lat, vec![-90.0, 0.0, 90.0]);
    }

    #[test]
    fn regional_axis_across_antimeridian() {
        let lon: Vec<f64> = (0..9).map(|i| 170.0 + 2.5 * i as f64).collect();
        let r = Reorder::new(&[10.0, 20.0], &lon, false).unwrap();
        assert_eq!(r.grid.lon.first(), Some(&170.0));
        assert_eq!(r.grid.lon.last(), Some(&190.0));
        let shifted: Vec<f64> = (0..9).map(|i| 200.0 + 2.5 * i as f64).collect();
        let r = Reorder::new(&[10.0, 20.0], &shifted, false).unwrap();
        assert_eq!(r.grid.lon.first(), Some(&-160.0));
    }

    #[test]
    fn latitude_out_of_range_message() {
        let lat = [20.0, 21.25, f64::from(1e30_f32)];
        let err = Reorder::new(&lat, &[0.0, 1.0], false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("runs from 20 to 1e30"), "{text}");
        assert!(text.contains("fetch or copy the file again"), "{text}");
        assert!(!text.contains("Some("), "{text}");
    }

    #[test]
    fn uneven_longitude_rejected() {
        let err = Reorder::new(&[0.0, 1.0], &[0.0, 1.0, 3.0], false).unwrap_err();
        assert!(err.to_string().contains("evenly spaced"), "{err}");
    }

    #[test]
    fn region_crossing_antimeridian_wraps() {
        let g = global_3deg();
        let r = Region {
            south: -10.0,
            north: 10.0,
            west: 171.0,
            east: -171.0,
        };
        let idx = g.region_indices(&r).unwrap();
        let lons: Vec<f64> = idx.lon.iter().map(|&i| g.lon[i]).collect();
        assert_eq!(
            lons,
            vec![171.0, 174.0, 177.0, -180.0, -177.0, -174.0, -171.0]
        );
        assert_eq!(g.lat[idx.lat.start], -9.0);
        assert_eq!(g.lat[idx.lat.end - 1], 9.0);
    }

    #[test]
    fn region_on_regional_grid_edge() {
        let g = Grid {
            lat: (0..33).map(|j| 20.0 + 1.25 * j as f64).collect(),
            lon: (0..36).map(|i| -140.0 + 2.5 * i as f64).collect(),
        };
        let inside = Region {
            south: 30.0,
            north: 50.0,
            west: -120.0,
            east: -80.0,
        };
        let idx = g.region_indices(&inside).unwrap();
        assert_eq!(idx.lon.len(), 17);
        assert_eq!(idx.lat.len(), 17);
        let straddle = Region {
            west: -150.0,
            ..inside
        };
        let err = g.region_indices(&straddle).unwrap_err();
        assert!(err.to_string().contains("lon -140..-52.5"), "{err}");
        let reversed = Region {
            west: -80.0,
            east: -120.0,
            ..inside
        };
        let text = g.region_indices(&reversed).unwrap_err().to_string();
        assert!(
            text.contains("west -80 is greater than east -120"),
            "{text}"
        );
        assert!(text.contains("crosses the antimeridian"), "{text}");
        assert!(text.contains("swap west and east"), "{text}");
        assert!(!text.contains("must lie inside the domain"), "{text}");
        let north = Region {
            north: 70.0,
            ..inside
        };
        assert!(g.region_indices(&north).is_err());
        // The same box written in 0..360 longitudes selects the same columns.
        let east_positive = Region {
            west: 240.0,
            east: 280.0,
            ..inside
        };
        assert_eq!(g.region_indices(&east_positive).unwrap(), idx);
    }

    #[test]
    fn region_validation() {
        let bad = Region {
            south: 10.0,
            north: -10.0,
            west: 0.0,
            east: 1.0,
        };
        assert!(bad.validate().is_err());
        let nan = Region {
            south: f64::NAN,
            ..bad
        };
        assert!(nan.validate().is_err());
        let far = Region {
            south: -10.0,
            north: 10.0,
            west: -400.0,
            east: 0.0,
        };
        assert!(far.validate().is_err());
    }
}
