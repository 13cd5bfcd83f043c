//! 「デザイン」 and 「サービスメニュー」: the society's colours, logo and welcome text, and the
//! service icons of the member top page, edited in the same draft as 「設定」 and published
//! with it. Colours are checked for contrast (WCAG 2.1) against what is drawn on them and
//! refused below the limit with the measured ratio and a suggestion; images go through
//! [`super::images`].

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::images;
use super::settings::{self, DraftState};
use super::{Ctx, FieldProblem, FullAdmin, ServiceError};
use crate::tenant::{Definition, ServiceIcon};

/// White: the text on the primary colour (header, buttons) and the page it is drawn on.
const WHITE: &str = "#ffffff";
/// The tint of notices, on which text in the primary colour is drawn.
const NOTICE: &str = "#eef4fb";
/// Text and what it is drawn on: WCAG 2.1 1.4.3.
pub const TEXT_RATIO: f64 = 4.5;
/// Lines and rings: WCAG 2.1 1.4.11.
pub const LINE_RATIO: f64 = 3.0;

fn rgb(hex: &str) -> Option<[f64; 3]> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok().map(f64::from);
    Some([v(0)?, v(2)?, v(4)?])
}

fn luminance(c: [f64; 3]) -> f64 {
    let lin = |v: f64| {
        let s = v / 255.0;
        if s <= 0.039_28 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
}

/// The WCAG 2.1 contrast ratio of two `#rrggbb` colours.
pub fn contrast(a: &str, b: &str) -> Option<f64> {
    let (la, lb) = (luminance(rgb(a)?), luminance(rgb(b)?));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    Some((hi + 0.05) / (lo + 0.05))
}

/// The same hue made darker, step by step, until it reaches `ratio` against every colour
/// of `against`.
pub fn darker_until(colour: &str, against: &[&str], ratio: f64) -> Option<String> {
    let c = rgb(colour)?;
    for step in 1..=20 {
        let f = 1.0 - f64::from(step) * 0.05;
        let hex = format!(
            "#{:02x}{:02x}{:02x}",
            (c[0] * f).round() as u8,
            (c[1] * f).round() as u8,
            (c[2] * f).round() as u8
        );
        if against
            .iter()
            .all(|b| contrast(&hex, b).is_some_and(|r| r >= ratio))
        {
            return Some(hex);
        }
    }
    None
}

/// One contrast check as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ContrastCheck {
    pub field: &'static str,
    /// `text_on_primary` | `primary_on_notice` | `accent_line`
    pub what: &'static str,
    pub ratio: f64,
    pub required: f64,
    pub ok: bool,
}

/// The checks of a pair of colours.
pub fn contrast_checks(primary: &str, accent: &str) -> Vec<ContrastCheck> {
    let mut out = Vec::new();
    let mut push = |field, what, ratio: Option<f64>, required| {
        if let Some(ratio) = ratio {
            out.push(ContrastCheck {
                field,
                what,
                ratio: (ratio * 100.0).floor() / 100.0,
                required,
                ok: ratio >= required,
            });
        }
    };
    push(
        "theme.primary_color",
        "text_on_primary",
        contrast(primary, WHITE),
        TEXT_RATIO,
    );
    push(
        "theme.primary_color",
        "primary_on_notice",
        contrast(primary, NOTICE),
        TEXT_RATIO,
    );
    // The accent is a line under the header and a focus ring: it must stand out from the
    // header or from the page.
    let line = match (contrast(accent, primary), contrast(accent, WHITE)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    };
    push("theme.accent_color", "accent_line", line, LINE_RATIO);
    out
}

/// What a society types on 「デザイン」.
#[derive(Debug, Clone, Default)]
pub struct LookEdit {
    pub primary_color: String,
    pub accent_color: String,
    pub welcome: String,
    /// A path returned by [`upload`], to become the logo.
    pub logo: Option<String>,
}

fn problem(field: &'static str, message: String) -> FieldProblem {
    FieldProblem {
        field,
        code: "look_rule",
        message: Some(message),
    }
}

/// Checks an uploaded image and stores it; returns its path among the society's assets.
pub async fn upload(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    field: &'static str,
    file_name: &str,
    bytes: &[u8],
) -> Result<String, ServiceError> {
    let kind = images::check(file_name, bytes)
        .map_err(|r| ServiceError::Invalid(vec![FieldProblem::new(field, r.code())]))?;
    let digest = hex::encode(Sha256::digest(bytes));
    let path = format!("uploads/{}.{}", &digest[..24], kind.extension());
    ctx.state
        .store
        .put_asset(&ctx.tenant.id, &path, kind.content_type(), bytes)
        .await?;
    ctx.audit("image_uploaded", None, &path, None).await;
    Ok(path)
}

/// Saves colours, welcome text and logo into the draft; nothing is saved if a colour has
/// too little contrast (the message gives the ratio and a darker colour that passes).
pub async fn save_look(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    edit: &LookEdit,
) -> Result<DraftState, ServiceError> {
    let primary = edit.primary_color.trim().to_ascii_lowercase();
    let accent = edit.accent_color.trim().to_ascii_lowercase();
    let mut problems = Vec::new();
    for (field, value) in [
        ("theme.primary_color", &primary),
        ("theme.accent_color", &accent),
    ] {
        if rgb(value).is_none() {
            problems.push(FieldProblem::new(field, "look_color_format"));
        }
    }
    if problems.is_empty() {
        let checks = contrast_checks(&primary, &accent);
        // The accent is measured against the primary colour: while the primary colour is
        // refused, only it is named, as changing it may settle the accent too.
        let primary_refused = checks
            .iter()
            .any(|c| !c.ok && c.field == "theme.primary_color");
        for c in checks
            .into_iter()
            .filter(|c| !c.ok)
            .filter(|c| !(primary_refused && c.field == "theme.accent_color"))
        {
            let suggestion = match c.what {
                "accent_line" => darker_until(&accent, &[WHITE], LINE_RATIO),
                _ => darker_until(&primary, &[WHITE, NOTICE], TEXT_RATIO),
            }
            .unwrap_or_else(|| "#000000".into());
            problems.push(problem(
                c.field,
                settings::say(
                    ctx,
                    &format!("look.contrast.{}", c.what),
                    &[
                        ("ratio", format!("{:.2}", c.ratio)),
                        ("required", format!("{}", c.required)),
                        ("suggestion", suggestion),
                    ],
                ),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ServiceError::Invalid(problems));
    }
    let current = settings::draft(ctx).await?;
    let mut definition: Definition = current.definition.clone();
    definition.settings.theme.primary_color = primary;
    definition.settings.theme.accent_color = accent;
    definition.settings.welcome = edit.welcome.trim().replace("\r\n", "\n");
    if let Some(logo) = &edit.logo {
        known_asset(ctx, logo, "theme.logo").await?;
        definition.settings.theme.logo = logo.clone();
    }
    settings::check(ctx, &definition)?;
    settings::save(ctx, &current, definition).await
}

/// `path` is an uploaded image of this society (or a file of its theme).
async fn known_asset(ctx: &Ctx<'_>, path: &str, field: &'static str) -> Result<(), ServiceError> {
    let found = if path.starts_with("uploads/") {
        ctx.state.store.asset(&ctx.tenant.id, path).await?.is_some()
    } else {
        crate::tenant::is_asset_path(path)
            && ctx.state.themes.asset(&ctx.tenant.slug, path).is_some()
    };
    if found {
        Ok(())
    } else {
        Err(ServiceError::Invalid(vec![FieldProblem::new(
            field,
            "image_unknown",
        )]))
    }
}

/// What a society types for one service icon.
#[derive(Debug, Clone, Default)]
pub struct ServiceEdit {
    pub title: String,
    pub url: String,
    pub visible: bool,
    /// A path returned by [`upload`]; required for a new service.
    pub image: Option<String>,
}

fn service_problems(edit: &ServiceEdit) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    let title = edit.title.trim();
    if title.is_empty() {
        out.push(FieldProblem::new("title", "service_title_empty"));
    } else if title.chars().count() > 50 || title.chars().any(char::is_control) {
        out.push(FieldProblem::new("title", "service_title_long"));
    }
    let url = edit.url.trim();
    let host = url
        .strip_prefix("https://")
        .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(h)
            if !h.is_empty()
                && url.len() <= 2000
                && !url.chars().any(|c| c.is_whitespace() || c.is_control()) => {}
        _ => out.push(FieldProblem::new("url", "service_url")),
    }
    out
}

/// A new id for a service: `service-<n>`, unused in the draft.
fn new_id(services: &[ServiceIcon]) -> String {
    (1..)
        .map(|n| format!("service-{n}"))
        .find(|id| !services.iter().any(|s| &s.id == id))
        .expect("a free id")
}

/// Adds (`id` None) or changes a service in the draft.
pub async fn save_service(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    id: Option<&str>,
    edit: &ServiceEdit,
) -> Result<DraftState, ServiceError> {
    let mut problems = service_problems(edit);
    if id.is_none() && edit.image.is_none() {
        problems.push(FieldProblem::new("image", "image_empty"));
    }
    if !problems.is_empty() {
        return Err(ServiceError::Invalid(problems));
    }
    let current = settings::draft(ctx).await?;
    let mut definition = current.definition.clone();
    if let Some(image) = &edit.image {
        known_asset(ctx, image, "image").await?;
    }
    match id {
        Some(id) => {
            let service = definition
                .services
                .iter_mut()
                .find(|s| s.id == id)
                .ok_or(ServiceError::NotFound)?;
            service.title = edit.title.trim().to_owned();
            service.url = edit.url.trim().to_owned();
            service.visible = edit.visible;
            if let Some(image) = &edit.image {
                service.image = image.clone();
            }
        }
        None => {
            let id = new_id(&definition.services);
            definition.services.push(ServiceIcon {
                id,
                title: edit.title.trim().to_owned(),
                image: edit.image.clone().unwrap_or_default(),
                url: edit.url.trim().to_owned(),
                visible: edit.visible,
            });
        }
    }
    settings::check(ctx, &definition)?;
    settings::save(ctx, &current, definition).await
}

/// Moves a service one place up or down, or removes it, in the draft.
pub async fn arrange_service(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    id: &str,
    action: &str,
) -> Result<DraftState, ServiceError> {
    let current = settings::draft(ctx).await?;
    let mut definition = current.definition.clone();
    let at = definition
        .services
        .iter()
        .position(|s| s.id == id)
        .ok_or(ServiceError::NotFound)?;
    match action {
        "up" if at > 0 => definition.services.swap(at, at - 1),
        "down" if at + 1 < definition.services.len() => definition.services.swap(at, at + 1),
        "up" | "down" => {}
        "delete" => {
            definition.services.remove(at);
        }
        _ => return Err(ServiceError::NotFound),
    }
    settings::save(ctx, &current, definition).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TenantFile;

    #[test]
    fn the_seed_themes_pass_their_own_check() {
        for text in [
            include_str!("../../../tenants/daiwakenpo.toml"),
            include_str!("../../../tenants/kanekakenpo.toml"),
        ] {
            let theme = TenantFile::parse(text).unwrap().settings.theme;
            for c in contrast_checks(&theme.primary_color, &theme.accent_color) {
                assert!(c.ok, "{}: {} {:.2}", theme.primary_color, c.what, c.ratio);
            }
        }
    }

    #[test]
    fn ratios_and_suggestions_follow_wcag() {
        assert!((contrast("#000000", "#ffffff").unwrap() - 21.0).abs() < 1e-9);
        assert!((contrast("#0b4f8a", "#ffffff").unwrap() - 8.40).abs() < 0.01);
        let pale = "#7fa8d8";
        assert!(contrast(pale, WHITE).unwrap() < TEXT_RATIO);
        let darker = darker_until(pale, &[WHITE, NOTICE], TEXT_RATIO).unwrap();
        assert!(contrast(&darker, WHITE).unwrap() >= TEXT_RATIO);
        assert!(contrast(&darker, NOTICE).unwrap() >= TEXT_RATIO);
    }
}
