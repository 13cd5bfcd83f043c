//! The authenticator app of the tests: the real `oathtool`, fed the key the set-up page
//! shows.

use crate::browser_like::Reply;

/// The code `oathtool` shows for `key`, `offset` seconds from now.
pub fn oathtool(key: &str, offset: i64) -> String {
    let mut cmd = std::process::Command::new("oathtool");
    cmd.args(["--totp", "-b", key]);
    if offset != 0 {
        let sign = if offset > 0 { '+' } else { '-' };
        cmd.args(["-N", &format!("now {sign} {} seconds", offset.abs())]);
    }
    let out = cmd
        .output()
        .expect("oathtool is needed: apt-get install oathtool (tests/run does)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The base32 key under 「スキャンできませんか？」 on a set-up page.
pub fn shown_key(page: &Reply) -> String {
    page.body
        .split("id=\"totp-key\" class=\"key\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("the key is shown: {}", page.summary()))
        .to_owned()
}
