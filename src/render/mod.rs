//! What the pages, the command line and the weekly report draw alike: charts (plotters, SVG
//! or PNG), the tables of each statistics section and figures with their units.

pub mod chart;
pub mod figures;
pub mod tables;

use time::{UtcOffset, macros::format_description};

/// Unix seconds as local `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(unix: i64, offset: UtcOffset) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.to_offset(offset))
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_default()
}
