//! How names are compared when society staff search for a member: the name as typed on a
//! phone call rarely matches the roster byte for byte. Both sides are reduced to one key:
//! Unicode NFKC (half-width カナ and full-width letters become their usual forms), no
//! spaces of any width, hiragana as katakana, letters in lower case. 「山田　花子」,
//! 「山田花子」 and 「山田 花子」 then find each other, and so do 「やまだ」 and 「ﾔﾏﾀﾞ」.

use unicode_normalization::UnicodeNormalization;

/// Separates the display name from the kana in a stored key; never part of a query key
/// (queries lose every whitespace and control character).
const SEPARATOR: char = '\n';

/// One name reduced for comparison.
pub fn name_key(text: &str) -> String {
    text.nfkc()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .map(|c| match c {
            // Hiragana ぁ..ゖ and the iteration marks ゝゞ map to katakana 0x60 higher.
            'ぁ'..='ゖ' | 'ゝ' | 'ゞ' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The key stored with a member: the display name and the name in kana, kept apart so
/// that no query matches across the two.
pub fn member_key(display_name: &str, name_kana: &str) -> String {
    let mut key = name_key(display_name);
    key.push(SEPARATOR);
    key.push_str(&name_key(name_kana));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_widths_and_kana_kinds_do_not_matter() {
        let stored = member_key("山田　花子", "やまだ はなこ");
        for typed in [
            "山田花子",
            "山田 花子",
            "田花",
            "ヤマダ",
            "ﾔﾏﾀﾞﾊﾅｺ",
            "やまだはなこ",
        ] {
            assert!(stored.contains(&name_key(typed)), "{typed}");
        }
        assert!(!stored.contains(&name_key("山田太郎")));
        // The two names are kept apart: the end of one and the start of the other are
        // not one match.
        assert!(!stored.contains(&name_key("花子ヤマダ")));
        assert_eq!(name_key("ＡＢＣ　ｄ"), "abcd");
    }
}
