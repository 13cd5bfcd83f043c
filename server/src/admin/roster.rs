//! A member roster as societies keep it in Excel, read for 「一括登録」: UTF-8 with or without
//! a BOM, or Shift_JIS (CP932); CRLF or LF; a header row naming the columns in Japanese
//! (氏名, 生年月日, メールアドレス, 記号, 番号, optionally 氏名カナ) in any order; birth dates
//! written 1980/4/1, 1980-04-01 or in the Japanese calendar (S55.4.1, 昭和55年4月1日).
//!
//! Reading checks every row with the same rules as registering one member and reports
//! every problem at once (row, column, reason), duplicates within the file included. It
//! changes nothing: the import itself is a separate step.

use unicode_normalization::UnicodeNormalization;

use super::members::{check_input, MemberInput};

/// Largest roster file read.
pub const MAX_BYTES: usize = 5 * 1024 * 1024;
/// Most rows one import may hold.
pub const MAX_ROWS: usize = 20_000;

/// A column of the roster: its Japanese header and the member field it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Name,
    Kana,
    BirthDate,
    Email,
    CardSymbol,
    CardNumber,
    /// The user ID from the society's old system (kanekakenpo: 「ユーザIDは従来より変更
    /// ございません」); optional.
    UserId,
}

impl Column {
    const ALL: [Column; 7] = [
        Column::Name,
        Column::Kana,
        Column::BirthDate,
        Column::Email,
        Column::CardSymbol,
        Column::CardNumber,
        Column::UserId,
    ];

    /// The header as the console names it.
    pub fn header(self) -> &'static str {
        match self {
            Column::Name => "氏名",
            Column::Kana => "氏名カナ",
            Column::BirthDate => "生年月日",
            Column::Email => "メールアドレス",
            Column::CardSymbol => "記号",
            Column::CardNumber => "番号",
            Column::UserId => "ユーザID",
        }
    }

    /// Other headers societies use for the same column.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Column::Name => &["氏名", "名前", "氏名漢字"],
            Column::Kana => &["氏名カナ", "カナ氏名", "フリガナ", "氏名フリガナ"],
            Column::BirthDate => &["生年月日"],
            Column::Email => &["メールアドレス", "メール", "Eメール", "電子メール"],
            Column::CardSymbol => &["記号", "被保険者証記号", "保険証記号"],
            Column::CardNumber => &["番号", "被保険者証番号", "保険証番号"],
            Column::UserId => &["ユーザID", "ユーザーID", "利用者ID", "ログインID"],
        }
    }

    fn required(self) -> bool {
        !matches!(self, Column::Kana | Column::UserId)
    }

    /// The member field a problem of [`check_input`] names.
    fn of_field(field: &str) -> Column {
        match field {
            "name_kana" => Column::Kana,
            "birth_date" => Column::BirthDate,
            "email" => Column::Email,
            "card_symbol" => Column::CardSymbol,
            "card_number" => Column::CardNumber,
            "user_id" => Column::UserId,
            _ => Column::Name,
        }
    }
}

/// One problem of one row: the line of the file (the header is line 1), the column and a
/// reason code (`roster.<code>` in the console's texts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: usize,
    pub column: Column,
    pub code: &'static str,
}

/// A row that passed every check, with its line.
#[derive(Debug, Clone)]
pub struct RosterRow {
    pub line: usize,
    pub input: MemberInput,
}

/// What a roster file holds.
#[derive(Debug, Clone)]
pub struct Roster {
    /// `UTF-8 (BOM)`, `UTF-8` or `Shift_JIS`.
    pub encoding: &'static str,
    pub rows: Vec<RosterRow>,
    pub problems: Vec<RowProblem>,
    /// Data rows read (good and bad).
    pub total: usize,
}

/// Why a file cannot be read as a roster at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterError {
    Empty,
    TooLarge,
    /// Neither UTF-8 nor Shift_JIS.
    NotText,
    /// Not CSV (e.g. an unterminated quote).
    Malformed,
    MissingColumns(Vec<Column>),
    TooManyRows,
}

impl RosterError {
    /// The reason code (`roster.<code>` in the console's texts).
    pub fn code(&self) -> &'static str {
        match self {
            RosterError::Empty => "empty",
            RosterError::TooLarge => "too_large",
            RosterError::NotText => "not_text",
            RosterError::Malformed => "malformed",
            RosterError::MissingColumns(_) => "missing_columns",
            RosterError::TooManyRows => "too_many_rows",
        }
    }
}

/// Decodes the file: UTF-8 (a BOM is dropped), else Shift_JIS as Windows writes it (CP932).
pub(crate) fn decode(bytes: &[u8]) -> Result<(String, &'static str), RosterError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .map(|s| (s.to_owned(), "UTF-8 (BOM)"))
            .map_err(|_| RosterError::NotText);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((text.to_owned(), "UTF-8"));
    }
    // encoding_rs's Shift_JIS is the WHATWG one: Windows-31J, with NEC and IBM extensions.
    let (text, had_errors) = encoding_rs::SHIFT_JIS.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(RosterError::NotText);
    }
    Ok((text.into_owned(), "Shift_JIS"))
}

/// A header or cell as compared: NFKC (full-width letters and digits to half width), no
/// spaces of any width.
fn normalized(text: &str) -> String {
    text.nfkc().filter(|c| !c.is_whitespace()).collect()
}

/// A birth date as rosters write it, as `YYYY-MM-DD`: 1980/4/1, 1980-04-01, 1980年4月1日,
/// S55.4.1, 昭和55年4月1日 (元年 for the first year). The range rule (1900 to today) is
/// checked with the other fields. None if it is not a date.
pub fn roster_date(cell: &str) -> Option<String> {
    let text = normalized(cell);
    const ERAS: [(&str, &str, i32, i32); 5] = [
        ("M", "明治", 1868, 45),
        ("T", "大正", 1912, 15),
        ("S", "昭和", 1926, 64),
        ("H", "平成", 1989, 31),
        ("R", "令和", 2019, 99),
    ];
    let upper = text.to_uppercase();
    let (base, rest) = match ERAS.iter().find_map(|(letter, name, start, last)| {
        upper
            .strip_prefix(letter)
            .or_else(|| upper.strip_prefix(name))
            .map(|rest| ((*start, *last), rest))
    }) {
        Some((era, rest)) => (Some(era), rest.to_owned()),
        None => (None, upper),
    };
    let rest = rest.replacen("元", "1", 1);
    let parts: Vec<&str> = rest
        .split(['/', '-', '.', '年', '月', '日'])
        .filter(|p| !p.is_empty())
        .collect();
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    let (y, m, d) = (
        y.parse::<i32>().ok()?,
        m.parse::<u8>().ok()?,
        d.parse::<u8>().ok()?,
    );
    let year = match base {
        Some((start, last)) if (1..=last).contains(&y) => start + y - 1,
        Some(_) => return None,
        None if y >= 1000 => y,
        None => return None,
    };
    let month = time::Month::try_from(m).ok()?;
    let date = time::Date::from_calendar_date(year, month, d).ok()?;
    Some(format!("{:04}-{:02}-{:02}", date.year(), m, d))
}

/// The key two rows of the same person share: the card's 記号 and 番号 when both are given,
/// else the name and the birth date.
pub(crate) fn identity(input: &MemberInput) -> String {
    if !input.card_symbol.is_empty() && !input.card_number.is_empty() {
        format!(
            "card\n{}\n{}",
            normalized(&input.card_symbol),
            normalized(&input.card_number)
        )
    } else {
        format!(
            "name\n{}\n{}",
            normalized(&input.display_name),
            input.birth_date
        )
    }
}

/// The identity key of a member on record, to compare a roster with the members a society
/// already has.
pub fn member_identity(name: &str, birth_date: &str, symbol: &str, number: &str) -> String {
    identity(&MemberInput {
        display_name: name.to_owned(),
        birth_date: birth_date.to_owned(),
        card_symbol: symbol.trim().to_owned(),
        card_number: number.trim().to_owned(),
        ..MemberInput::default()
    })
}

impl Roster {
    /// The identity key of each good row, in order.
    pub fn identities(&self) -> impl Iterator<Item = (usize, String)> + '_ {
        self.rows.iter().map(|r| (r.line, identity(&r.input)))
    }

    /// Moves the rows at `lines` to the problems with `code` (e.g. already members).
    pub fn refuse(&mut self, lines: &[usize], column: Column, code: &'static str) {
        let refused: std::collections::HashSet<usize> = lines.iter().copied().collect();
        self.rows.retain(|r| !refused.contains(&r.line));
        for &line in lines {
            self.problems.push(RowProblem { line, column, code });
        }
        self.problems.sort_by_key(|p| p.line);
    }
}

/// Reads a roster file: every row checked, every problem reported; nothing is changed.
pub fn read(bytes: &[u8]) -> Result<Roster, RosterError> {
    if bytes.is_empty() {
        return Err(RosterError::Empty);
    }
    if bytes.len() > MAX_BYTES {
        return Err(RosterError::TooLarge);
    }
    let (text, encoding) = decode(bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(_)) => return Err(RosterError::Malformed),
        None => return Err(RosterError::Empty),
    };
    let headers: Vec<String> = header.iter().map(normalized).collect();
    let position = |column: Column| {
        headers
            .iter()
            .position(|h| column.aliases().iter().any(|a| normalized(a) == *h))
    };
    let missing: Vec<Column> = Column::ALL
        .into_iter()
        .filter(|c| c.required() && position(*c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(RosterError::MissingColumns(missing));
    }
    let at = |column: Column| position(column);
    let (name, kana, birth, email, symbol, number, user_id) = (
        at(Column::Name),
        at(Column::Kana),
        at(Column::BirthDate),
        at(Column::Email),
        at(Column::CardSymbol),
        at(Column::CardNumber),
        at(Column::UserId),
    );
    let mut roster = Roster {
        encoding,
        rows: Vec::new(),
        problems: Vec::new(),
        total: 0,
    };
    let mut seen = std::collections::HashSet::new();
    let bytes_of = text.as_bytes();
    let (mut counted, mut newlines) = (0usize, 0usize);
    for (i, record) in records.enumerate() {
        let record = record.map_err(|_| RosterError::Malformed)?;
        // The line the row starts on, as a spreadsheet numbers it (quoted cells may span
        // lines).
        // (Counted from the byte offset: after a CRLF the reader's own line count lags by
        // one, as the LF is read with the next record.)
        let line = match record.position() {
            Some(p) => {
                let mut at = usize::try_from(p.byte()).unwrap_or(0).min(bytes_of.len());
                if bytes_of.get(at) == Some(&b'\n') {
                    at += 1;
                }
                newlines += bytes_of[counted..at]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                counted = at;
                newlines + 1
            }
            None => i + 2,
        };
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue; // Excel leaves empty rows at the end.
        }
        roster.total += 1;
        if roster.total > MAX_ROWS {
            return Err(RosterError::TooManyRows);
        }
        let cell = |p: Option<usize>| p.and_then(|p| record.get(p)).unwrap_or("").trim();
        let date_cell = cell(birth);
        let mut problems = Vec::new();
        // The Japanese calendar and other spellings become YYYY-MM-DD; what is not a date
        // at all is left as written, for the member rules to refuse.
        let birth_date = roster_date(date_cell).unwrap_or_else(|| date_cell.to_owned());
        let input = MemberInput {
            display_name: cell(name).to_owned(),
            name_kana: cell(kana).to_owned(),
            birth_date,
            email: cell(email).to_owned(),
            card_symbol: cell(symbol).to_owned(),
            card_number: cell(number).to_owned(),
            user_id: cell(user_id).to_owned(),
        };
        match check_input(&input) {
            Ok((clean, _)) => {
                let key = identity(&clean);
                if seen.contains(&key) {
                    problems.push(RowProblem {
                        line,
                        column: if clean.card_symbol.is_empty() {
                            Column::Name
                        } else {
                            Column::CardNumber
                        },
                        code: "duplicate_in_file",
                    });
                } else {
                    seen.insert(key);
                    roster.rows.push(RosterRow { line, input: clean });
                }
            }
            Err(found) => {
                for p in found {
                    problems.push(RowProblem {
                        line,
                        column: Column::of_field(p.field),
                        code: p.code,
                    });
                }
            }
        }
        roster.problems.extend(problems);
    }
    Ok(roster)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "氏名,氏名カナ,生年月日,メールアドレス,記号,番号";

    #[test]
    fn dates_in_every_spelling_a_roster_uses() {
        for (cell, want) in [
            ("1980/4/1", "1980-04-01"),
            ("1980-04-01", "1980-04-01"),
            ("１９８０／４／１", "1980-04-01"),
            ("1980年4月1日", "1980-04-01"),
            ("S55.4.1", "1980-04-01"),
            ("s55/4/1", "1980-04-01"),
            ("昭和55年4月1日", "1980-04-01"),
            ("H2.1.8", "1990-01-08"),
            ("平成元年2月1日", "1989-02-01"),
            ("R1.5.1", "2019-05-01"),
            ("令和元年5月1日", "2019-05-01"),
        ] {
            assert_eq!(roster_date(cell).as_deref(), Some(want), "{cell}");
        }
        for cell in ["1980/2/30", "S65.1.1", "55.4.1", "昭和55年", "", "四月一日"] {
            assert_eq!(roster_date(cell), None, "{cell}");
        }
    }

    #[test]
    fn utf8_with_bom_and_shift_jis_with_crlf_read_alike() {
        let text =
            format!("{HEADER}\r\n大和 太郎,ダイワ タロウ,S55.4.1,taro@example.jp,1234,56\r\n");
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        let (sjis, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
        assert!(!unmappable);
        let a = read(&bom).unwrap();
        let b = read(&sjis).unwrap();
        assert_eq!((a.encoding, b.encoding), ("UTF-8 (BOM)", "Shift_JIS"));
        for r in [&a, &b] {
            assert!(r.problems.is_empty(), "{:?}", r.problems);
            assert_eq!(r.rows.len(), 1);
            let m = &r.rows[0].input;
            assert_eq!(m.display_name, "大和 太郎");
            assert_eq!(m.birth_date, "1980-04-01");
            assert_eq!(
                (m.card_symbol.as_str(), m.card_number.as_str()),
                ("1234", "56")
            );
        }
    }

    #[test]
    fn every_bad_row_is_named_with_its_column_and_nothing_else_is_lost() {
        let text = "番号,記号,メールアドレス,生年月日,氏名\n\
             1,10,a@example.jp,1980/1/1,一郎\n\
             2,10,b@example.jp,1980/2/30,二郎\n\
             3,10,not-an-address,1980/3/3,三郎\n\
             1,10,d@example.jp,1981/1/1,四郎\n\
             ,,,,\n\
             5,10,e@example.jp,2999/1/1,五郎\n";
        let r = read(text.as_bytes()).unwrap();
        assert_eq!(r.total, 5);
        assert_eq!(r.rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2]);
        let found: Vec<(usize, &str, &str)> = r
            .problems
            .iter()
            .map(|p| (p.line, p.column.header(), p.code))
            .collect();
        assert_eq!(
            found,
            [
                (3, "生年月日", "birth_date_format"),
                (4, "メールアドレス", "email_invalid"),
                (5, "番号", "duplicate_in_file"),
                (7, "生年月日", "birth_date_range"),
            ]
        );
    }

    #[test]
    fn lines_are_counted_alike_with_crlf_and_lf() {
        let lf = format!("{HEADER}\n大和 太郎,ダイワ タロウ,1980/2/30,taro@example.jp,1,2\n");
        let crlf = lf.replace('\n', "\r\n");
        for text in [lf, crlf] {
            let r = read(text.as_bytes()).unwrap();
            assert_eq!(r.problems[0].line, 2, "{text:?}");
        }
    }

    #[test]
    fn files_that_are_not_rosters_are_refused_whole() {
        assert_eq!(read(b"").unwrap_err(), RosterError::Empty);
        assert_eq!(
            read("氏名,生年月日\n".as_bytes()).unwrap_err(),
            RosterError::MissingColumns(vec![
                Column::Email,
                Column::CardSymbol,
                Column::CardNumber
            ])
        );
        assert_eq!(
            read(b"\x89PNG\r\n\x1a\n\xff\xfe\xfd").unwrap_err(),
            RosterError::NotText
        );
        let big = vec![b'a'; MAX_BYTES + 1];
        assert_eq!(read(&big).unwrap_err(), RosterError::TooLarge);
    }
}
