//! The dashboard's charts, drawn by charts-rs as SVG images: sign-ins per day and
//! second-factor adoption. Served as images of their own (`/admin/charts/…`), each with a
//! text alternative and a table on the dashboard.

use std::sync::Arc;

use charts_rs::{BarChart, Color, HorizontalBarChart, Series};
use poem::http::{header, StatusCode};
use poem::web::{Data, Path};
use poem::{handler, IntoResponse, Response};

use super::console::text;
use super::ConsoleAdmin;
use crate::admin::stats::{self, Dashboard};
use crate::admin::Ctx;
use crate::web::{AppState, CurrentTenant};

/// Fonts the charts ask for: Japanese labels need a CJK face.
const FONT: &str = "Noto Sans CJK JP";
const WIDTH: f32 = 720.0;
const HEIGHT: f32 = 320.0;
/// Successful sign-ins and failures; the dashboard's legend names them in the same colours
/// (the chart's own legend cannot measure Japanese text).
pub const OK_COLOUR: &str = "#1f5fa8";
pub const FAILED_COLOUR: &str = "#b3261e";

/// Sign-ins (successful and failed) per day, as bars.
pub fn signins_svg(state: &AppState, d: &Dashboard) -> Result<String, String> {
    let labels: Vec<String> = d.signins.iter().map(|s| s.day.clone()).collect();
    let ok: Vec<f32> = d.signins.iter().map(|s| s.ok as f32).collect();
    let failed: Vec<f32> = d.signins.iter().map(|s| s.failed as f32).collect();
    let mut chart = BarChart::new(
        vec![
            Series::new(text(state, "dashboard.signins_ok"), ok),
            Series::new(text(state, "dashboard.signins_failed"), failed),
        ],
        labels,
    );
    chart.base.width = WIDTH;
    chart.base.height = HEIGHT;
    chart.base.font_family = FONT.to_owned();
    chart.base.animation = None;
    chart.base.legend.show = Some(false);
    chart.base.series.colors = vec![Color::from(OK_COLOUR), Color::from(FAILED_COLOUR)];
    chart.svg().map_err(|e| e.to_string())
}

/// Members holding each kind of second factor, as horizontal bars.
pub fn adoption_svg(state: &AppState, d: &Dashboard) -> Result<String, String> {
    let labels: Vec<String> = d
        .adoption
        .iter()
        .map(|(kind, _)| text(state, &format!("factors_short.{kind}")))
        .collect();
    let counts: Vec<f32> = d.adoption.iter().map(|(_, n)| *n as f32).collect();
    let mut chart = HorizontalBarChart::new(
        vec![Series::new(text(state, "dashboard.members_label"), counts)],
        labels,
    );
    chart.base.width = WIDTH;
    chart.base.height = HEIGHT;
    chart.base.font_family = FONT.to_owned();
    chart.base.animation = None;
    chart.base.legend.show = Some(false);
    chart.base.series.colors = vec![Color::from(OK_COLOUR)];
    chart.svg().map_err(|e| e.to_string())
}

#[handler]
pub async fn image(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(name): Path<String>,
) -> poem::Result<Response> {
    let acting = admin.acting();
    let ctx = Ctx {
        state: &state,
        tenant: &tenant.0,
        acting: &acting,
    };
    let dashboard = stats::dashboard(&ctx).await.map_err(crate::web::internal)?;
    let svg = match name.as_str() {
        "signins.svg" => signins_svg(&state, &dashboard),
        "adoption.svg" => adoption_svg(&state, &dashboard),
        _ => return Err(poem::error::NotFoundError.into()),
    }
    .map_err(crate::web::internal)?;
    Ok(svg
        .with_content_type("image/svg+xml")
        .with_header(header::CACHE_CONTROL, "no-store")
        // An image: no script runs in it; its own styles may apply.
        .with_header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        )
        .with_status(StatusCode::OK)
        .into_response())
}
