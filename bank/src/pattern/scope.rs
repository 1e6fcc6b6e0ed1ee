//! The fields a pattern is keyed on. `key()` renders the fields that are set in a fixed
//! order, so one scope always maps to one pattern row.

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Scope {
    pub model: Option<String>,
    pub device: Option<String>,
    pub grid_bucket: Option<u32>,
    pub lead_steps: Option<u32>,
    pub schedule_id: Option<String>,
    pub variable: Option<String>,
    pub lead_hours: Option<u32>,
}

impl Scope {
    pub fn runtime(model: &str, device: &str, grid_bucket: u32, lead_steps: u32) -> Self {
        Self {
            lead_steps: Some(lead_steps),
            ..Self::batch(model, device, grid_bucket)
        }
    }

    pub fn batch(model: &str, device: &str, grid_bucket: u32) -> Self {
        Self {
            model: Some(model.to_string()),
            device: Some(device.to_string()),
            grid_bucket: Some(grid_bucket),
            ..Self::default()
        }
    }

    pub fn skill(schedule_id: &str, variable: &str, lead_hours: u32) -> Self {
        Self {
            schedule_id: Some(schedule_id.to_string()),
            variable: Some(variable.to_string()),
            lead_hours: Some(lead_hours),
            ..Self::default()
        }
    }

    pub fn key(&self) -> String {
        let fields = [
            ("model", self.model.clone()),
            ("device", self.device.clone()),
            ("grid_bucket", self.grid_bucket.map(|v| v.to_string())),
            ("lead_steps", self.lead_steps.map(|v| v.to_string())),
            ("schedule", self.schedule_id.clone()),
            ("variable", self.variable.clone()),
            ("lead_hours", self.lead_hours.map(|v| v.to_string())),
        ];
        let parts: Vec<String> = fields
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| format!("{name}={value}")))
            .collect();
        parts.join(";")
    }
}
