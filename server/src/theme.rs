//! Themes: Tera templates, locale texts and static assets.
//!
//! `themes/default/` holds everything; `themes/<slug>/` may override any template, any
//! locale text and any static asset of one tenant. The default theme is compiled once and
//! shared by every tenant that overrides no template or text (almost all of them); a
//! tenant that does gets a theme of its own, assembled on first use and cached.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use moka::sync::Cache;
use serde_json::Value;
use tera::Tera;

pub const DEFAULT_THEME: &str = "default";
const LOCALE_FILE: &str = "locales/ja.toml";
/// The table of a locale file that holds no texts but rewrites phrases in all of them,
/// e.g. `"ユーザ ID" = "ユーザID"` for a society that writes the word without a space.
const WORDING: &str = "wording";

#[derive(Clone)]
pub struct Themes {
    root: PathBuf,
    /// The layer every theme starts from: `<root>/default`, or the console folder itself.
    base: PathBuf,
    cache: Cache<String, Arc<Theme>>,
    /// The base layer alone, shared.
    shared: Arc<Theme>,
}

/// Tenants whose theme is kept: the shared one costs a pointer per tenant, so this bounds
/// only how often the folders are looked at.
const THEME_CACHE_ENTRIES: u64 = 100_000;

pub struct Theme {
    tera: Tera,
    /// Locale texts, reachable in templates as `t`.
    texts: Value,
    /// For each template that reads `t` only as `t.<section>…`: a context holding just
    /// those sections, so a render copies a few texts instead of all of them.
    texts_for: HashMap<String, tera::Context>,
    /// The `[wording]` of the theme's locale files: phrase and replacement, longest first.
    wording: Vec<(String, String)>,
}

impl Themes {
    /// Checks that the default theme loads, so a broken template stops start-up.
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        let base = root.join(DEFAULT_THEME);
        let shared = Arc::new(Theme::load(&root, &base, DEFAULT_THEME)?);
        Ok(Self {
            base,
            root,
            cache: Cache::new(THEME_CACHE_ENTRIES),
            shared,
        })
    }

    /// The society admin console: one folder (`templates/`, `locales/`, `static/`) with no
    /// per-tenant layers. A broken template stops start-up.
    pub fn console(dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let dir = dir.into();
        let shared = Arc::new(Theme::load(&dir, &dir, DEFAULT_THEME)?);
        Ok(Self {
            base: dir.clone(),
            root: dir,
            cache: Cache::new(1),
            shared,
        })
    }

    /// The theme of a tenant: its overrides over the default.
    pub fn get(&self, slug: &str) -> anyhow::Result<Arc<Theme>> {
        if let Some(theme) = self.cache.get(slug) {
            return Ok(theme);
        }
        let theme = if self.overrides(slug) {
            Arc::new(Theme::load(&self.root, &self.base, slug)?)
        } else {
            Arc::clone(&self.shared)
        };
        self.cache.insert(slug.to_owned(), Arc::clone(&theme));
        Ok(theme)
    }

    /// Whether the tenant has templates or texts of its own (static files alone need no
    /// theme of their own: [`Themes::asset`] finds them).
    fn overrides(&self, slug: &str) -> bool {
        if slug == DEFAULT_THEME || !is_plain_name(slug) || self.root == self.base {
            return false;
        }
        let layer = self.root.join(slug);
        layer.join("templates").is_dir()
            || layer.join("mail").is_dir()
            || layer.join(LOCALE_FILE).is_file()
    }

    /// Finds a static asset: the tenant's own first, then the default theme's. The path
    /// must already be checked to be relative and plain.
    pub fn asset(&self, slug: &str, path: &str) -> Option<PathBuf> {
        [self.root.join(slug), self.base.clone()]
            .iter()
            .map(|layer| layer.join("static").join(path))
            .find(|p| p.is_file())
    }
}

impl Theme {
    fn load(root: &Path, base: &Path, slug: &str) -> anyhow::Result<Self> {
        let mut layers = vec![base.to_path_buf()];
        if slug != DEFAULT_THEME && is_plain_name(slug) && root != base {
            layers.push(root.join(slug));
        }

        let mut tera = Tera::default();
        let mut files = Vec::new();
        for layer in &layers {
            // Page templates by their path under templates/; mail templates as mail/….
            let pages = layer.join("templates");
            if pages.is_dir() {
                collect_files(&pages, &pages, &mut files)?;
            }
            let mail = layer.join("mail");
            if mail.is_dir() {
                collect_files(layer, &mail, &mut files)?;
            }
        }
        // Later layers come later, so a tenant's template replaces the default one.
        tera.add_template_files(files.iter().map(|(path, name)| (path, Some(name.as_str()))))
            .with_context(|| format!("loading templates of theme '{slug}'"))?;

        let mut texts = Value::Object(Default::default());
        for layer in &layers {
            let file = layer.join(LOCALE_FILE);
            if file.is_file() {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let table: toml::Table =
                    toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
                merge(&mut texts, serde_json::to_value(table)?);
            }
        }
        let wording = take_wording(&mut texts)
            .with_context(|| format!("the [{WORDING}] of theme '{slug}'"))?;
        reword_all(&mut texts, &wording);
        // The sources by template name, later layers replacing earlier ones as in Tera.
        let mut sources = HashMap::new();
        for (path, name) in &files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            sources.insert(name.clone(), text);
        }
        let mut texts_for = HashMap::new();
        for name in sources.keys() {
            if let Some(sections) = sections_read(name, &sources) {
                let mut subset = serde_json::Map::new();
                for section in sections {
                    if let Some(value) = texts.get(&section) {
                        subset.insert(section, value.clone());
                    }
                }
                let mut context = tera::Context::new();
                context.insert("t", &subset);
                texts_for.insert(name.clone(), context);
            }
        }
        Ok(Self {
            tera,
            texts,
            texts_for,
            wording,
        })
    }

    /// Renders a page template with the locale texts added as `t`.
    pub fn render(&self, template: &str, context: &mut tera::Context) -> anyhow::Result<String> {
        match self.texts_for.get(template) {
            Some(texts) => context.extend(texts.clone()),
            None => context.insert("t", &self.texts),
        }
        let mut out = self
            .tera
            .render(template, context)
            .with_context(|| format!("rendering {template}"))?;
        // Mail templates write their words inline rather than as texts, so the wording
        // applies to what they render. Pages get it through their texts only: a page also
        // shows back what the member typed.
        if template.starts_with("mail/") {
            reword(&mut out, &self.wording);
        }
        Ok(out)
    }

    /// `text` (a message written outside the locale files, such as a rule of the user ID)
    /// in the theme's wording.
    pub fn worded(&self, text: &str) -> String {
        let mut out = text.to_owned();
        reword(&mut out, &self.wording);
        out
    }

    /// One locale text by its dotted key, e.g. `errors.not_found`.
    pub fn text<'a>(&'a self, key: &'a str) -> &'a str {
        key.split('.')
            .try_fold(&self.texts, |v, k| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or(key)
    }
}

/// The sections of `t` (`t.<section>…`) that `template` can read, through the templates
/// it extends, includes or imports; `None` when one of them reads `t` any other way (as a
/// whole, passed to a macro, by an index), and so needs every text.
fn sections_read(template: &str, sources: &HashMap<String, String>) -> Option<BTreeSet<String>> {
    let mut sections = BTreeSet::new();
    let mut todo = vec![template.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let source = sources.get(&name)?;
        for tag in tags(source) {
            let words: Vec<&str> = tag.split_whitespace().collect();
            if let ["extends" | "include" | "import", target, ..] = words.as_slice() {
                todo.push(target.trim_matches(|c| c == '"' || c == '\'').to_owned());
            }
            let bytes = tag.as_bytes();
            for (i, _) in tag.match_indices('t') {
                let before = i.checked_sub(1).map(|j| bytes[j]);
                let after = bytes.get(i + 1).copied();
                let word =
                    |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
                if word(before) || before == Some(b'.') || word(after) {
                    continue; // part of another name
                }
                if after != Some(b'.') {
                    return None;
                }
                let key: String = tag[i + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if key.is_empty() {
                    return None;
                }
                sections.insert(key);
            }
        }
    }
    Some(sections)
}

/// The insides of a template's `{{ … }}` and `{% … %}` tags.
fn tags(source: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find(['{']) {
        let after = &rest[start + 1..];
        let close = match after.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        match body.find(close) {
            Some(end) => {
                out.push(body[..end].trim_matches('-'));
                rest = &body[end + 2..];
            }
            None => break,
        }
    }
    out
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Every file below `dir`, named by its path relative to `base` with `/` separators.
fn collect_files(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect_files(base, &path, out)?;
        } else {
            let name = path
                .strip_prefix(base)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((path, name));
        }
    }
    Ok(())
}

/// Removes the `[wording]` table from the merged texts and returns its pairs, the longest
/// phrase first so that a phrase containing another one is still found.
fn take_wording(texts: &mut Value) -> anyhow::Result<Vec<(String, String)>> {
    let table = match texts.as_object_mut().and_then(|t| t.remove(WORDING)) {
        None => return Ok(Vec::new()),
        Some(Value::Object(table)) => table,
        Some(_) => anyhow::bail!("must be a table of phrases"),
    };
    let mut wording = Vec::new();
    for (from, to) in table {
        match to {
            Value::String(to) if !from.is_empty() => wording.push((from, to)),
            _ => anyhow::bail!("\"{from}\" must be a phrase mapped to a string"),
        }
    }
    wording.sort_by_key(|(from, _)| std::cmp::Reverse(from.chars().count()));
    Ok(wording)
}

/// Applies `wording` to every string in `value`.
fn reword_all(value: &mut Value, wording: &[(String, String)]) {
    match value {
        Value::String(text) => reword(text, wording),
        Value::Array(items) => {
            for item in items {
                reword_all(item, wording);
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                reword_all(item, wording);
            }
        }
        _ => {}
    }
}

fn reword(text: &mut String, wording: &[(String, String)]) {
    for (from, to) in wording {
        if text.contains(from.as_str()) {
            *text = text.replace(from.as_str(), to);
        }
    }
}

/// Deep-merges `over` into `base`: tables merge, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn tenant_overrides_fall_back_to_default() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("default/templates/page.html"),
            "{{ t.greeting }} {% block body %}default{% endblock %}",
        );
        write(&root.join("default/templates/base.html"), "base");
        write(
            &root.join("default/locales/ja.toml"),
            "greeting = \"こんにちは\"\n[nested]\na = \"1\"\nb = \"2\"\n",
        );
        write(
            &root.join("acme/templates/page.html"),
            "{{ t.greeting }} {{ t.nested.a }}{{ t.nested.b }} acme",
        );
        write(&root.join("acme/locales/ja.toml"), "[nested]\nb = \"B\"\n");
        write(&root.join("default/static/logo.svg"), "<svg/>");
        write(&root.join("acme/static/logo.svg"), "<svg id='acme'/>");
        write(&root.join("default/static/site.css"), "body{}");

        let themes = Themes::new(root).unwrap();
        let mut ctx = tera::Context::new();
        assert_eq!(
            themes
                .get("default")
                .unwrap()
                .render("page.html", &mut ctx)
                .unwrap(),
            "こんにちは default"
        );
        assert_eq!(
            themes
                .get("acme")
                .unwrap()
                .render("page.html", &mut ctx)
                .unwrap(),
            "こんにちは 1B acme"
        );
        assert_eq!(
            themes
                .get("other")
                .unwrap()
                .render("base.html", &mut ctx)
                .unwrap(),
            "base"
        );
        assert!(themes
            .asset("acme", "logo.svg")
            .unwrap()
            .starts_with(root.join("acme")));
        assert!(themes
            .asset("acme", "site.css")
            .unwrap()
            .starts_with(root.join("default")));
        assert!(themes.asset("acme", "missing.css").is_none());
        assert_eq!(themes.get("acme").unwrap().text("nested.b"), "B");
        // Tenants without templates or texts of their own share the compiled default.
        write(&root.join("logoonly/static/logo.svg"), "<svg/>");
        let shared = themes.get("other").unwrap();
        assert!(Arc::ptr_eq(&shared, &themes.get("logoonly").unwrap()));
        assert!(Arc::ptr_eq(&shared, &themes.get("default").unwrap()));
        assert!(!Arc::ptr_eq(&shared, &themes.get("acme").unwrap()));
    }

    #[test]
    fn wording_rewrites_every_text_of_the_theme() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("default/templates/page.html"),
            "{{ t.login.user_id }}|{{ t.login.invalid }}|{{ t.list | join(sep=',') }}",
        );
        write(
            &root.join("default/mail/notice.txt"),
            "ユーザ ID：{{ user_id }}",
        );
        write(
            &root.join("default/locales/ja.toml"),
            "list = [\"ユーザ ID\", \"ID\"]\n[login]\nuser_id = \"ユーザ ID\"\n\
             invalid = \"無効なユーザ ID またはパスワードです。\"\n",
        );
        write(
            &root.join("acme/locales/ja.toml"),
            "[wording]\n\"ユーザ ID\" = \"ユーザID\"\n\"ユーザ ID また\" = \"ユーザIDまた\"\n",
        );
        write(
            &root.join("bad/locales/ja.toml"),
            "[wording]\n\"ユーザ ID\" = 1\n",
        );

        let themes = Themes::new(root).unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("user_id", "ユーザ ID");
        let acme = themes.get("acme").unwrap();
        assert_eq!(
            acme.render("page.html", &mut ctx).unwrap(),
            "ユーザID|無効なユーザIDまたはパスワードです。|ユーザID,ID"
        );
        assert_eq!(acme.text("login.user_id"), "ユーザID");
        assert!(acme.texts.get(WORDING).is_none());
        // Mail templates' own words are reworded too (here also the value, as in any mail).
        assert_eq!(
            acme.render("mail/notice.txt", &mut ctx).unwrap(),
            "ユーザID：ユーザID"
        );
        let default = themes.get(DEFAULT_THEME).unwrap();
        assert_eq!(
            default.render("page.html", &mut ctx).unwrap(),
            "ユーザ ID|無効なユーザ ID またはパスワードです。|ユーザ ID,ID"
        );
        assert_eq!(
            default.render("mail/notice.txt", &mut ctx).unwrap(),
            "ユーザ ID：ユーザ ID"
        );
        assert!(themes.get("bad").is_err());
    }

    #[test]
    fn templates_get_only_the_texts_they_read() {
        let sources: HashMap<String, String> = [
            (
                "base.html",
                "<title>{{ t.site.product }}</title>{% block main %}{% endblock main %}",
            ),
            (
                "macros.html",
                "{% macro csrf(token) %}{{ token }}{% endmacro csrf %}",
            ),
            (
                "page.html",
                "{% extends \"base.html\" %}{% import \"macros.html\" as f %}\
                 {% block main %}{{ t.top.heading }} {{ f::csrf(token=csrf_token) }} \
                 {% if tenant.welcome %}test{% endif %}{% endblock main %}",
            ),
            (
                "whole.html",
                "{% extends \"base.html\" %}{{ s::steps(t=t) }}",
            ),
            ("indexed.html", "{{ t[\"top\"] }}"),
            ("missing.html", "{% extends \"nowhere.html\" %}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let read = |name| sections_read(name, &sources).map(|s| s.into_iter().collect::<Vec<_>>());
        assert_eq!(read("page.html"), Some(vec!["site".into(), "top".into()]));
        assert_eq!(read("whole.html"), None);
        assert_eq!(read("indexed.html"), None);
        assert_eq!(read("missing.html"), None);
    }

    #[test]
    fn every_page_renders_the_same_with_only_the_texts_it_reads() {
        let themes = Themes::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../themes")).unwrap();
        let theme = themes.get(DEFAULT_THEME).unwrap();
        assert!(theme.texts_for.contains_key("top.html"));
        assert!(theme.texts_for.contains_key("login.html"));
        let chain = |e: tera::Error| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                text.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            text
        };
        for (name, texts) in &theme.texts_for {
            let mut context = tera::Context::new();
            context.insert("csrf_token", "token");
            context.insert(
                "tenant",
                &serde_json::json!({"slug": "acme", "name": "健保", "contact": "", "welcome": "",
                    "logo_url": "/static/logo.svg", "theme_css_url": "/theme.css?v=1"}),
            );
            let mut subset = context.clone();
            subset.extend(texts.clone());
            context.insert("t", &theme.texts);
            // A page that needs more than this context fails alike, at the same place:
            // a text missing from the subset would fail it earlier or elsewhere.
            assert_eq!(
                theme.tera.render(name, &subset).map_err(chain),
                theme.tera.render(name, &context).map_err(chain),
                "{name}"
            );
        }
    }
}
