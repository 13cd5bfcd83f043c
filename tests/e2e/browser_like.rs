//! A client that talks to tenant hosts the way a browser does: real host names
//! (`http://daiwakenpo.localhost:<port>/…`), one cookie jar kept per host, redirects
//! followed by hand so each hop can be checked, forms sent url-encoded with the CSRF
//! token of the page. Plus members created with the CLI and the whole first login.

use std::sync::{Arc, Mutex};

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::Url;

use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::harness::{stderr, stdout, TestApp, TestDb};

/// The User-Agent every request of these tests carries (and the audit log keeps).
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) portal-e2e-signin/1.0";
pub const DAIWA_HOST: &str = "daiwakenpo.localhost";
pub const KANEKA_HOST: &str = "kanekakenpo.localhost";

/// The member host of a tenant slug.
pub fn host_of(slug: &str) -> String {
    format!("{slug}.localhost")
}

/// One response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The `Location` header, or "".
    pub location: String,
    /// Every `Set-Cookie` header, as sent.
    pub set_cookies: Vec<String>,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Self {
        let headers = response.headers().clone();
        let text = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        let location = text("location").into_iter().next().unwrap_or_default();
        let set_cookies = text("set-cookie");
        Self {
            status: response.status().as_u16(),
            location,
            set_cookies,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    /// True for `303 See Other` to exactly `path`.
    pub fn is_see_other(&self, path: &str) -> bool {
        self.status == 303 && self.location == path
    }

    /// The `Set-Cookie` header that sets `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.set_cookies
            .iter()
            .find(|c| c.starts_with(&prefix))
            .map(String::as_str)
    }

    /// The body with character references decoded, as a reader sees the text.
    pub fn text(&self) -> String {
        unescape_html(&self.body)
    }

    /// The CSRF token of the page's (first) form.
    pub fn csrf_token(&self) -> String {
        csrf_token(&self.body).unwrap_or_else(|| {
            panic!(
                "no csrf_token on the page ({}):\n{}",
                self.status, self.body
            )
        })
    }

    /// Short description for assertion messages.
    pub fn summary(&self) -> String {
        let body: String = self.body.chars().take(3000).collect();
        format!(
            "status {} location {:?} set-cookie {:?}\n{}",
            self.status, self.location, self.set_cookies, body
        )
    }
}

/// The value of the hidden input `name` in `html`, as a browser would submit it (character
/// references decoded: the templates escape `/` in a base64 token as `&#x2F;`).
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(unescape_html(&html[start..start + end]))
}

/// Decodes the character references an HTML escaper writes (`&amp;`, `&#x2F;`, `&#39;` …).
pub fn unescape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity.strip_prefix('#').and_then(|n| {
                let code = match n.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.parse().ok(),
                };
                code.and_then(char::from_u32)
            }),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The CSRF token a form of `html` carries.
pub fn csrf_token(html: &str) -> Option<String> {
    hidden_value(html, "csrf_token").filter(|t| !t.is_empty())
}

/// `html` with every CSRF token value blanked, for comparing pages.
pub fn without_csrf_tokens(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find(marker) {
        let after = i + marker.len();
        out.push_str(&rest[..after]);
        rest = &rest[after..];
        let end = rest.find('"').unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A browser: one cookie jar over every host, a current host its relative paths go to, and
/// the device's passkey authenticator (webauthn-authenticator-rs's software passkey,
/// reporting user verification like a phone after Face ID).
#[derive(Clone)]
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub port: u16,
    pub host: String,
    pub authenticator: Arc<Mutex<SoftPasskey>>,
    /// Where the portal under test writes mail when no SMTP server is configured.
    pub mail_dir: std::path::PathBuf,
}

impl Browser {
    /// A fresh browser (empty jar) looking at `host` of `app`.
    pub fn new(app: &TestApp, host: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(Policy::none())
            .user_agent(USER_AGENT)
            .resolve(DAIWA_HOST, app.member)
            .resolve(KANEKA_HOST, app.member)
            .resolve(&format!("www.{DAIWA_HOST}"), app.member)
            .resolve(&format!("www.{KANEKA_HOST}"), app.member)
            .build()
            .unwrap();
        Self {
            client,
            jar,
            port: app.member.port(),
            host: host.to_owned(),
            authenticator: Arc::new(Mutex::new(SoftPasskey::new(true))),
            mail_dir: app.db.data_dir.path().join("mail"),
        }
    }

    /// The same browser (same cookie jar and authenticator) sent to another node of the
    /// cluster, as a load balancer would.
    pub fn on_node(&self, app: &TestApp) -> Self {
        Self {
            jar: Arc::clone(&self.jar),
            authenticator: Arc::clone(&self.authenticator),
            client: reqwest::Client::builder()
                .cookie_provider(Arc::clone(&self.jar))
                .redirect(Policy::none())
                .user_agent(USER_AGENT)
                .resolve(DAIWA_HOST, app.member)
                .resolve(KANEKA_HOST, app.member)
                .build()
                .unwrap(),
            port: app.member.port(),
            host: self.host.clone(),
            mail_dir: self.mail_dir.clone(),
        }
    }

    /// A private window on the same device: an empty cookie jar, the same authenticator.
    pub fn private_window(&self, app: &TestApp) -> Self {
        Self {
            authenticator: Arc::clone(&self.authenticator),
            ..Self::new(app, &self.host)
        }
    }

    /// The origin pages of the current host have (what a browser puts in clientDataJSON).
    pub fn origin(&self) -> Url {
        Url::parse(&format!("http://{}:{}", self.host, self.port)).unwrap()
    }

    /// POSTs a JSON body with the CSRF token in the header, as the passkey script does.
    pub async fn post_json(&self, path: &str, token: &str, body: String) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("x-csrf-token", token)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        Reply::read(response).await
    }

    /// The same browser (same jar) on another host, like a second tab.
    pub fn at(&self, host: &str) -> Self {
        Self {
            host: host.to_owned(),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("http://{}:{}{path}", self.host, self.port)
        }
    }

    fn base(&self) -> Url {
        Url::parse(&self.url("/")).unwrap()
    }

    pub async fn get(&self, path: &str) -> Reply {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Reply::read(response).await
    }

    /// POSTs exactly `fields`, url-encoded (no token added).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            body.append_pair(k, v);
        }
        self.post_raw(path, body.finish()).await
    }

    /// POSTs `body` as a url-encoded form.
    pub async fn post_raw(&self, path: &str, body: String) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        Reply::read(response).await
    }

    /// POSTs a `multipart/form-data` form of `fields` and one file, as a browser uploads.
    pub async fn post_file(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file_field: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Reply {
        let boundary = format!("----portal-e2e-{}", portal::random_token(8));
        let mut body = Vec::new();
        // The form token goes first, as the console's forms send it (the server checks it
        // before it reads the rest of an upload).
        let mut fields = fields.to_vec();
        fields.sort_by_key(|(k, _)| *k != "csrf_token");
        for (k, v) in &fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; \
                 filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let response = self
            .client
            .post(self.url(path))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        Reply::read(response).await
    }

    /// A valid CSRF token for this host (taken from the login page, which any visitor sees).
    pub async fn token(&self) -> String {
        let page = self.get("/login").await;
        assert_eq!(page.status, 200, "{}", page.summary());
        page.csrf_token()
    }

    /// POSTs `fields` plus a valid CSRF token, as the page's form would.
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let token = self.token().await;
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post(path, &all).await
    }

    /// GETs `path` (which must show a form) and POSTs `fields` with that form's token.
    pub async fn fill(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "GET {path}: {}", page.summary());
        let token = page.csrf_token();
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post(path, &all).await
    }

    /// Follows one `303` (GET of its `Location`); any other reply is returned as is.
    pub async fn follow(&self, reply: Reply) -> Reply {
        if reply.status == 303 {
            self.get(&reply.location).await
        } else {
            reply
        }
    }

    /// The value of cookie `name` the browser would send to the current host.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let header = self.jar.cookies(&self.base())?;
        header.to_str().ok()?.split("; ").find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }

    /// GETs `path` with exactly the `Cookie` header given, outside this browser's jar.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> Reply {
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .user_agent(USER_AGENT)
            .resolve(&self.host, std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .build()
            .unwrap();
        let response = client
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Reply::read(response).await
    }
}

// --- members -------------------------------------------------------------------------------

/// A member as the society's letter describes them.
#[derive(Debug, Clone)]
pub struct Letter {
    pub name: String,
    pub birth_date: String,
    pub email: String,
    /// Temporary credentials printed on the letter.
    pub user_id: String,
    pub password: String,
}

/// `portal member add`: a member with temporary credentials.
pub fn add_member(db: &TestDb, slug: &str, name: &str, birth_date: &str, email: &str) -> Letter {
    let out = db.run(&[
        "member",
        "add",
        slug,
        "--name",
        name,
        "--birth-date",
        birth_date,
        "--email",
        email,
    ]);
    assert!(out.status.success(), "member add: {}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    Letter {
        name: name.to_owned(),
        birth_date: birth_date.to_owned(),
        email: email.to_owned(),
        user_id: json["user_id"].as_str().unwrap().to_owned(),
        password: json["password"].as_str().unwrap().to_owned(),
    }
}

/// A member with a made-up name and random e-mail address.
pub fn add_some_member(db: &TestDb, slug: &str) -> Letter {
    let tag = portal::random_token(3);
    add_member(
        db,
        slug,
        &format!("山田 太郎{tag}"),
        "1980-04-01",
        &format!("taro.{tag}@example.jp"),
    )
}

/// A new user ID that follows the policy (8–13 of `a-z0-9-_.@`).
pub fn fresh_user_id() -> String {
    format!("m-{}", portal::random_token(4))
}

/// A new password that follows the policy and is nobody's common password.
pub fn fresh_password() -> String {
    format!("Pw!{}#x", portal::random_token(6))
}

/// The login page, then the login form: the reply to the POST.
pub async fn login(b: &Browser, user_id: &str, password: &str) -> Reply {
    b.fill("/login", &[("user_id", user_id), ("password", password)])
        .await
}

/// Logs in and follows to where the flow sends the member; asserts that the password was
/// accepted. Returns the reply of `/login/next` (a 303).
pub async fn login_ok(b: &Browser, user_id: &str, password: &str) -> Reply {
    let reply = login(b, user_id, password).await;
    assert!(
        reply.is_see_other("/login/next"),
        "login of {user_id} refused: {}",
        reply.summary()
    );
    b.follow(reply).await
}

/// One step of the first login: GET `path`, POST `fields` with its token, expect the way
/// on (`/login/next`) and follow it. Returns the reply of `/login/next`.
pub async fn first_login_step(b: &Browser, path: &str, fields: &[(&str, &str)]) -> Reply {
    let reply = b.fill(path, fields).await;
    assert!(
        reply.is_see_other("/login/next"),
        "step {path} refused: {}",
        reply.summary()
    );
    b.follow(reply).await
}

/// Walks the first login of `letter` in `b` up to and including the e-mail step,
/// choosing `user_id`, `password` and second-factor `method`; returns the reply of
/// `/login/next` after the e-mail step.
pub async fn walk_first_login_to(
    b: &Browser,
    letter: &Letter,
    user_id: &str,
    password: &str,
    method: &str,
) -> Reply {
    let next = login_ok(b, &letter.user_id, &letter.password).await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
    let next = first_login_step(
        b,
        "/login/birth-date",
        &[("birth_date", &letter.birth_date)],
    )
    .await;
    assert!(next.is_see_other("/login/terms"), "{}", next.summary());
    let terms = b.get("/login/terms").await;
    let version = hidden_value(&terms.body, "version").expect("terms version");
    let next = first_login_step(b, "/login/terms", &[("version", &version)]).await;
    assert!(next.is_see_other("/login/user-id"), "{}", next.summary());
    let next = first_login_step(
        b,
        "/login/user-id",
        &[("user_id", user_id), ("method", method)],
    )
    .await;
    assert!(next.is_see_other("/login/password"), "{}", next.summary());
    let next = first_login_step(
        b,
        "/login/password",
        &[("password", password), ("password_confirm", password)],
    )
    .await;
    assert!(next.is_see_other("/login/email"), "{}", next.summary());
    let email_page = b.get("/login/email").await;
    assert!(
        email_page.body.contains(&letter.email),
        "{}",
        email_page.summary()
    );
    first_login_step(b, "/login/email", &[("email", &letter.email)]).await
}

/// Walks the whole first login of `letter` in `b`, choosing `user_id` and `password`;
/// returns the member's top page.
pub async fn walk_first_login(
    b: &Browser,
    letter: &Letter,
    user_id: &str,
    password: &str,
) -> Reply {
    // The member picks a passkey and registers the browser's software authenticator.
    let next = walk_first_login_to(b, letter, user_id, password, "passkey").await;
    let next = if next.is_see_other("/login/email/confirm") {
        confirm_email(b, &letter.email).await
    } else {
        next
    };
    assert!(
        next.is_see_other("/login/passkey/setup"),
        "{}",
        next.summary()
    );
    let next = crate::passkeys::register(b, "パスキー").await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    assert!(
        b.cookie("portal_session").is_some(),
        "no session cookie after the first login"
    );
    let top = b.get("/").await;
    assert_eq!(top.status, 200);
    assert!(top.body.contains(&letter.name), "{}", top.summary());
    top
}

/// A member signed in after their first login, with the browser that holds the session.
pub struct SignedInMember {
    pub browser: Browser,
    pub letter: Letter,
    pub user_id: String,
    pub password: String,
}

/// Creates a member of `slug` and walks their first login in a new browser.
pub async fn signed_in_member(app: &TestApp, slug: &str) -> SignedInMember {
    let letter = add_some_member(&app.db, slug);
    let browser = Browser::new(app, &host_of(slug));
    let user_id = fresh_user_id();
    let password = fresh_password();
    walk_first_login(&browser, &letter, &user_id, &password).await;
    SignedInMember {
        browser,
        letter,
        user_id,
        password,
    }
}

/// A member of `slug` who completed the first login: their own user ID and password.
pub async fn first_login(app: &TestApp, slug: &str) -> (String, String) {
    let m = signed_in_member(app, slug).await;
    (m.user_id, m.password)
}

/// Subject and text body (`subject\nbody`) of a raw message addressed to `to`.
pub fn text_for(raw: &[u8], to: &str) -> Option<String> {
    let message = mail_parser::MessageParser::default().parse(raw)?;
    let addressed = message
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .is_some_and(|a| a.eq_ignore_ascii_case(to));
    let subject = message.subject().unwrap_or_default();
    let body = message.body_text(0).unwrap_or_default();
    addressed.then(|| format!("{subject}\n{body}"))
}

/// The subjects and text bodies of the mails the portal wrote (to files) for `to`, oldest first, once
/// at least `at_least` are there (waits up to 10 s).
pub async fn mails_to(b: &Browser, to: &str, at_least: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut files: Vec<_> = std::fs::read_dir(&b.mail_dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|x| x == "eml"));
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let texts: Vec<String> = files
            .iter()
            .filter_map(|p| text_for(&std::fs::read(p).ok()?, to))
            .collect();
        if texts.len() >= at_least || std::time::Instant::now() > deadline {
            return texts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// kanekakenpo 【6】【7】: opens the confirmation link mailed to `email`, then 「更新」;
/// returns the reply of `/login/next`.
pub async fn confirm_email(b: &Browser, email: &str) -> Reply {
    let mails = mails_to(b, email, 1).await;
    let text = mails.last().expect("a confirmation mail");
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/email/confirm?token="))
        .expect("a confirmation link");
    let opened = b.get(link).await;
    assert_eq!(opened.status, 200, "{}", opened.summary());
    b.get("/login/next").await
}
