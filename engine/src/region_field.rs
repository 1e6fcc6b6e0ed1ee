//! The `region` field of job and schedule bodies.

use gridcast_grid::Region;
use serde::Deserialize;

/// Accepts `region` only as an object. serde's derive would also take an array and read
/// it in field order, so `[30, 50, -120, -80]` would silently mean south, north, west,
/// east. The map is handed on as it is, so errors inside keep their path
/// (`region.south`).
pub fn deserialize_region_object<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Region>, D::Error> {
    deserializer.deserialize_option(RegionVisitor)
}

struct RegionVisitor;

impl<'de> serde::de::Visitor<'de> for RegionVisitor {
    type Value = Option<Region>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an object with south, north, west and east in degrees")
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
        inner.deserialize_map(self)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Region::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}
