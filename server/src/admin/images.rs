//! Images a society uploads (its logo, its service icons): the type is read from the
//! content, never from the name, and must agree with the name's extension; sizes are
//! bounded; an SVG is accepted only if it is plain drawing — no script, no event handler
//! attribute, no reference outside itself, no embedded HTML, no DTD — and refused
//! otherwise, with the reason.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Largest image file accepted.
pub const MAX_BYTES: usize = 1024 * 1024;
/// Largest width or height of a PNG or JPEG, in pixels.
const MAX_SIDE: u32 = 2000;
/// Smallest width or height.
const MIN_SIDE: u32 = 16;

/// A checked image: its kind and the extension it is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Png,
    Jpeg,
    Svg,
}

impl Kind {
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Png => "png",
            Kind::Jpeg => "jpg",
            Kind::Svg => "svg",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Svg => "image/svg+xml",
        }
    }

    /// The kind an asset path names by its extension.
    pub fn of_path(path: &str) -> Option<Kind> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "png" => Some(Kind::Png),
            "jpg" | "jpeg" => Some(Kind::Jpeg),
            "svg" => Some(Kind::Svg),
            _ => None,
        }
    }
}

/// Why an image is refused (`images.<code>` in the console's texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Empty,
    TooLarge,
    /// Not a PNG, JPEG or SVG.
    UnknownType,
    /// The content is of another type than the name says (a PNG named .svg).
    NameMismatch,
    /// Smaller or larger than allowed.
    Dimensions,
    /// An SVG with a script, an event handler, an outside reference or other active content.
    ActiveSvg,
    /// Not well-formed XML.
    BrokenSvg,
}

impl Refused {
    pub fn code(self) -> &'static str {
        match self {
            Refused::Empty => "image_empty",
            Refused::TooLarge => "image_too_large",
            Refused::UnknownType => "image_type",
            Refused::NameMismatch => "image_name_mismatch",
            Refused::Dimensions => "image_dimensions",
            Refused::ActiveSvg => "image_active_svg",
            Refused::BrokenSvg => "image_broken_svg",
        }
    }
}

/// Checks an uploaded image named `file_name`.
pub fn check(file_name: &str, bytes: &[u8]) -> Result<Kind, Refused> {
    if bytes.is_empty() {
        return Err(Refused::Empty);
    }
    if bytes.len() > MAX_BYTES {
        return Err(Refused::TooLarge);
    }
    let kind = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Kind::Png
    } else if bytes.starts_with(b"\xFF\xD8\xFF") {
        Kind::Jpeg
    } else if looks_like_svg(bytes) {
        Kind::Svg
    } else {
        return Err(Refused::UnknownType);
    };
    match Kind::of_path(file_name) {
        Some(named) if named == kind => {}
        _ => return Err(Refused::NameMismatch),
    }
    match kind {
        Kind::Png | Kind::Jpeg => {
            let format = if kind == Kind::Png {
                image::ImageFormat::Png
            } else {
                image::ImageFormat::Jpeg
            };
            let reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
            let (w, h) = reader.into_dimensions().map_err(|_| Refused::UnknownType)?;
            if !(MIN_SIDE..=MAX_SIDE).contains(&w) || !(MIN_SIDE..=MAX_SIDE).contains(&h) {
                return Err(Refused::Dimensions);
            }
        }
        Kind::Svg => check_svg(bytes)?,
    }
    Ok(kind)
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let head: String = text.chars().take(1024).collect();
    head.contains("<svg")
}

/// Elements plain drawings use.
const SVG_ELEMENTS: &[&str] = &[
    "svg",
    "g",
    "path",
    "rect",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "text",
    "tspan",
    "title",
    "desc",
    "defs",
    "linearGradient",
    "radialGradient",
    "stop",
    "clipPath",
    "mask",
    "symbol",
    "use",
];

/// The SVG holds drawing only.
fn check_svg(bytes: &[u8]) -> Result<(), Refused> {
    let mut reader = Reader::from_reader(bytes);
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|_| Refused::BrokenSvg)?;
        match event {
            Event::Eof => break,
            Event::DocType(_) | Event::PI(_) => return Err(Refused::ActiveSvg),
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name();
                let local = std::str::from_utf8(name.local_name().into_inner())
                    .map_err(|_| Refused::BrokenSvg)?
                    .to_owned();
                if !SVG_ELEMENTS.contains(&local.as_str()) {
                    return Err(Refused::ActiveSvg);
                }
                for attr in e.attributes() {
                    let attr = attr.map_err(|_| Refused::BrokenSvg)?;
                    let key = std::str::from_utf8(attr.key.local_name().into_inner())
                        .map_err(|_| Refused::BrokenSvg)?
                        .to_ascii_lowercase();
                    let value = attr
                        .unescape_value()
                        .map_err(|_| Refused::BrokenSvg)?
                        .to_ascii_lowercase();
                    if key.starts_with("on") {
                        return Err(Refused::ActiveSvg);
                    }
                    if key == "href" && !value.trim_start().starts_with('#') {
                        return Err(Refused::ActiveSvg);
                    }
                    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                    if compact.contains("url(") && !compact.contains("url(#") {
                        return Err(Refused::ActiveSvg);
                    }
                    if compact.contains("javascript:") || compact.contains("@import") {
                        return Err(Refused::ActiveSvg);
                    }
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|_| Refused::BrokenSvg)?;
                if text.to_ascii_lowercase().contains("url(") && !text.contains("url(#") {
                    return Err(Refused::ActiveSvg);
                }
            }
            _ => {}
        }
        buf.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><title>お知らせ</title><path d="M4 4h16v16H4z" fill="currentColor"/><use href="#a"/></svg>"##;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let img = image::RgbaImage::new(w, h);
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn plain_images_pass() {
        assert_eq!(check("icon.svg", ICON.as_bytes()), Ok(Kind::Svg));
        assert_eq!(check("logo.PNG", &png(64, 64)), Ok(Kind::Png));
    }

    #[test]
    fn active_svg_is_refused() {
        for bad in [
            r#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><image href="https://evil.example/x.png"/></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><use href="https://evil.example/s.svg#a"/></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill:url(https://evil.example/)"/></svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><p>x</p></foreignObject></svg>"#,
            r#"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"><rect/></a></svg>"#,
        ] {
            assert_eq!(
                check("x.svg", bad.as_bytes()),
                Err(Refused::ActiveSvg),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_sizes_and_types_are_checked() {
        assert_eq!(check("logo.svg", &png(64, 64)), Err(Refused::NameMismatch));
        assert_eq!(check("logo.png", &png(8, 8)), Err(Refused::Dimensions));
        assert_eq!(check("logo.png", &png(3000, 20)), Err(Refused::Dimensions));
        assert_eq!(check("x.png", b"GIF89a...."), Err(Refused::UnknownType));
        assert_eq!(
            check("x.png", &vec![0u8; MAX_BYTES + 1]),
            Err(Refused::TooLarge)
        );
        assert_eq!(
            check("x.svg", b"<svg><rect></svg>"),
            Err(Refused::BrokenSvg)
        );
    }
}
