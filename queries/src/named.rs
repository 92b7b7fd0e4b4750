//! Named queries: `.sql` files with a documented, typed parameter header.
//!
//! A named query's file starts with comment lines; the first paragraph describes the query and
//! each parameter is declared as
//!
//! ```text
//! -- @param NAME:TYPE DEFAULT DESCRIPTION
//! ```
//!
//! and used in the body as `{{NAME}}`. A value (given as text on the command line, or as a
//! literal argument of the table function in SQL) is validated against its type and substituted
//! as a literal built here, never as the text it came in:
//!
//! | type | accepts | substituted as |
//! |---|---|---|
//! | `int` | an integer | the integer |
//! | `float` | a finite number | the number with a decimal point |
//! | `date` | `YYYY-MM-DD` or `latest` | `TIMESTAMP 'YYYY-MM-DD 00:00:00'`, or `CAST(NULL AS TIMESTAMP)` for `latest` (the query then uses the end of the data) |
//! | `period` | `day`, `week`, `month` | a string literal |
//! | `kind` | an event kind of contract v1, or `any` | a string literal |
//! | `enum(a\|b\|…)` | one of the listed words | a string literal |
//! | `ranges` | `LO-HI,LO-HI,…` of integers, LO ≤ HI | `(VALUES (LO, HI), …)` |
//! | `account` | an account id (1-256 bytes, no control characters), or `all` | a string literal (quotes doubled), or `CAST(NULL AS VARCHAR)` for `all` |

use std::collections::BTreeMap;
use std::sync::LazyLock;

use vigil_engine::EventKind;

use crate::error::{QueryError, Result};

/// The type of a parameter, which decides what values it accepts and how they are substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Float,
    Date,
    Period,
    Kind,
    Enum(Vec<String>),
    Ranges,
    Account,
}

impl ParamType {
    fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "int" => ParamType::Int,
            "float" => ParamType::Float,
            "date" => ParamType::Date,
            "period" => ParamType::Period,
            "kind" => ParamType::Kind,
            "ranges" => ParamType::Ranges,
            "account" => ParamType::Account,
            _ => {
                let inner = s.strip_prefix("enum(")?.strip_suffix(')')?;
                let words: Vec<String> = inner.split('|').map(str::to_string).collect();
                if words.iter().any(|w| !is_word(w)) {
                    return None;
                }
                ParamType::Enum(words)
            }
        })
    }

    /// The type as written in a header.
    pub fn name(&self) -> String {
        match self {
            ParamType::Int => "int".into(),
            ParamType::Float => "float".into(),
            ParamType::Date => "date".into(),
            ParamType::Period => "period".into(),
            ParamType::Kind => "kind".into(),
            ParamType::Ranges => "ranges".into(),
            ParamType::Account => "account".into(),
            ParamType::Enum(w) => format!("enum({})", w.join("|")),
        }
    }

    /// Validates `value` and returns the SQL literal to substitute.
    pub fn literal(&self, value: &str) -> std::result::Result<String, String> {
        let v = value.trim();
        match self {
            ParamType::Int => v
                .parse::<i64>()
                .map(|n| if n < 0 { format!("({n})") } else { n.to_string() })
                .map_err(|_| format!("{v:?} is not an integer")),
            ParamType::Float => {
                let x: f64 = v.parse().map_err(|_| format!("{v:?} is not a number"))?;
                if !x.is_finite() {
                    return Err(format!("{v:?} is not a finite number"));
                }
                let mut s = x.to_string();
                if !s.contains('.') {
                    s.push_str(".0");
                }
                Ok(if x < 0.0 { format!("({s})") } else { s })
            }
            ParamType::Date => {
                if v.eq_ignore_ascii_case("latest") {
                    return Ok("CAST(NULL AS TIMESTAMP)".into());
                }
                let d = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| format!("{v:?} is not a date YYYY-MM-DD or latest"))?;
                Ok(format!("TIMESTAMP '{} 00:00:00'", d.format("%Y-%m-%d")))
            }
            ParamType::Period => match v {
                "day" | "week" | "month" => Ok(format!("'{v}'")),
                _ => Err(format!("{v:?} is not one of day, week, month")),
            },
            ParamType::Kind => {
                if v == "any" || EventKind::parse(v).is_some() {
                    Ok(format!("'{v}'"))
                } else {
                    Err(format!("{v:?} is not an event kind or any"))
                }
            }
            ParamType::Enum(words) => {
                if words.iter().any(|w| w == v) {
                    Ok(format!("'{v}'"))
                } else {
                    Err(format!("{v:?} is not one of {}", words.join(", ")))
                }
            }
            ParamType::Account => {
                if v == "all" {
                    return Ok("CAST(NULL AS VARCHAR)".into());
                }
                if v.is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
                    return Err(format!(
                        "{v:?} is not an account id (1-256 bytes, no control characters) or all"
                    ));
                }
                Ok(format!("'{}'", v.replace('\'', "''")))
            }
            ParamType::Ranges => {
                let mut rows = Vec::new();
                for part in v.split(',') {
                    let (lo, hi) = part
                        .trim()
                        .split_once('-')
                        .ok_or_else(|| format!("{part:?} is not LO-HI"))?;
                    let lo: u32 = lo
                        .trim()
                        .parse()
                        .map_err(|_| format!("{lo:?} is not a period number"))?;
                    let hi: u32 = hi
                        .trim()
                        .parse()
                        .map_err(|_| format!("{hi:?} is not a period number"))?;
                    if lo > hi {
                        return Err(format!("range {lo}-{hi} is empty"));
                    }
                    rows.push(format!("({lo}, {hi})"));
                }
                Ok(format!("(VALUES {})", rows.join(", ")))
            }
        }
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub ty: ParamType,
    pub default: String,
    pub description: String,
}

/// A named query: its description, parameters and SQL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuery {
    pub name: String,
    pub description: String,
    pub params: Vec<ParamSpec>,
    template: String,
}

impl NamedQuery {
    /// Parses a named query file. Every `{{NAME}}` in the body must be a declared parameter and
    /// every default must be valid.
    pub fn parse(name: &str, text: &str) -> Result<NamedQuery> {
        let bad = |detail: String| QueryError::BadQueryFile {
            query: name.to_string(),
            detail,
        };
        let expanded = expand_partials(text).map_err(bad)?;
        let text = expanded.as_str();
        if !is_word(name) {
            return Err(bad("a query name is letters, digits and _".into()));
        }
        let mut description = Vec::new();
        let mut params = Vec::new();
        let mut in_description = true;
        for line in text.lines() {
            let Some(comment) = line.trim_start().strip_prefix("--") else {
                break;
            };
            let comment = comment.trim();
            if let Some(decl) = comment.strip_prefix("@param") {
                in_description = false;
                let mut it = decl.split_whitespace();
                let (Some(head), Some(default)) = (it.next(), it.next()) else {
                    return Err(bad(format!("bad @param line {line:?}")));
                };
                let (pname, ty) = head
                    .split_once(':')
                    .ok_or_else(|| bad(format!("@param {head}: expected NAME:TYPE")))?;
                if !is_word(pname) {
                    return Err(bad(format!("bad parameter name {pname:?}")));
                }
                let ty = ParamType::parse(ty).ok_or_else(|| bad(format!("@param {pname}: unknown type {ty:?}")))?;
                ty.literal(default)
                    .map_err(|e| bad(format!("@param {pname}: bad default: {e}")))?;
                params.push(ParamSpec {
                    name: pname.to_string(),
                    ty,
                    default: default.to_string(),
                    description: it.collect::<Vec<_>>().join(" "),
                });
            } else if in_description {
                if comment.is_empty() && !description.is_empty() {
                    in_description = false;
                } else if !comment.is_empty() {
                    description.push(comment.to_string());
                }
            }
        }
        let q = NamedQuery {
            name: name.to_string(),
            description: description.join(" "),
            params,
            template: text.to_string(),
        };
        for used in placeholders(text) {
            if q.param(&used).is_none() {
                return Err(bad(format!("{{{{{used}}}}} is not a declared parameter")));
            }
        }
        Ok(q)
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The SQL with every parameter substituted: `values` by name, defaults for the rest.
    pub fn render(&self, values: &[(String, String)]) -> Result<String> {
        let mut chosen: BTreeMap<&str, &str> = self
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.default.as_str()))
            .collect();
        for (k, v) in values {
            if self.param(k).is_none() {
                return Err(QueryError::BadParam {
                    query: self.name.clone(),
                    name: k.clone(),
                    detail: format!(
                        "no such parameter (parameters: {})",
                        self.params
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            chosen.insert(k.as_str(), v.as_str());
        }
        let mut sql = strip_comments(&self.template);
        for p in &self.params {
            let lit =
                p.ty.literal(chosen[p.name.as_str()])
                    .map_err(|detail| QueryError::BadParam {
                        query: self.name.clone(),
                        name: p.name.clone(),
                        detail,
                    })?;
            sql = sql.replace(&format!("{{{{{}}}}}", p.name), &lit);
        }
        Ok(sql.trim().trim_end_matches(';').trim().to_string())
    }

    /// A help text: description and parameters.
    pub fn help(&self) -> String {
        let mut s = format!("{}\n    {}\n", self.name, self.description);
        for p in &self.params {
            s.push_str(&format!(
                "    --param {}=<{}> (default {}): {}\n",
                p.name,
                p.ty.name(),
                p.default,
                p.description
            ));
        }
        s
    }
}

/// Parses `k=v` into a pair.
pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        rest = &rest[i + 2..];
        if let Some(j) = rest.find("}}") {
            out.push(rest[..j].to_string());
            rest = &rest[j + 2..];
        }
    }
    out
}

/// SQL fragments several named queries share, included by a line `{{> NAME}}`
/// (`queries/sql/partials/NAME.sql`).
pub const PARTIALS: &[(&str, &str)] = &[(
    "retention_periods",
    include_str!("../sql/partials/retention_periods.sql"),
)];

/// `text` with every `{{> NAME}}` line replaced by that partial (without its comments).
fn expand_partials(text: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.trim().strip_prefix("{{>").and_then(|l| l.strip_suffix("}}")) {
            Some(name) => {
                let name = name.trim();
                let (_, partial) = PARTIALS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .ok_or_else(|| format!("unknown partial {{{{> {name}}}}}"))?;
                out.push_str(&strip_comments(partial));
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// The SQL without `--` comment lines (the header documents; it is not sent).
fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../sql/", $name, ".sql")))),*]
    };
}

/// The text of every built-in named query, by name.
pub const BUILTIN_SOURCES: &[(&str, &str)] = builtin!(
    "retention_nday",
    "retention_unbounded",
    "retention_bracket",
    "retention_cohorts",
    "annual_retention",
    "complaint_costs",
    "acquisition_cost",
    "churned_accounts",
    "churn_risk",
    "customer_summary",
    "customer_value",
    "health_changes",
);

static BUILTIN: LazyLock<Vec<NamedQuery>> = LazyLock::new(|| {
    BUILTIN_SOURCES
        .iter()
        .map(|(name, text)| NamedQuery::parse(name, text).expect("built-in named queries parse (tested)"))
        .collect()
});

/// The built-in named queries.
pub fn builtin() -> &'static [NamedQuery] {
    &BUILTIN
}

/// The built-in named query called `name`.
pub fn find(name: &str) -> Result<&'static NamedQuery> {
    builtin().iter().find(|q| q.name == name).ok_or_else(|| {
        QueryError::UnknownQuery(
            name.to_string(),
            builtin().iter().map(|q| q.name.as_str()).collect::<Vec<_>>().join(", "),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_renders_with_defaults() {
        for (name, text) in BUILTIN_SOURCES {
            let q = NamedQuery::parse(name, text).unwrap();
            assert!(!q.description.is_empty(), "{name} has no description");
            let sql = q.render(&[]).unwrap();
            assert!(!sql.contains("{{"), "{name}: {sql}");
        }
    }

    #[test]
    fn values_are_validated_and_never_pasted() {
        let q = NamedQuery::parse(
            "q",
            "-- a query\n-- @param n:int 3 how many\n-- @param g:period week p\n-- @param d:date latest as of\nSELECT {{n}}, {{g}}, {{d}}",
        )
        .unwrap();
        assert_eq!(q.render(&[]).unwrap(), "SELECT 3, 'week', CAST(NULL AS TIMESTAMP)");
        let sql = q
            .render(&[("n".into(), "-2".into()), ("d".into(), "2024-02-29".into())])
            .unwrap();
        assert_eq!(sql, "SELECT (-2), 'week', TIMESTAMP '2024-02-29 00:00:00'");
        for (k, v) in [
            ("n", "1; DROP TABLE x"),
            ("n", "1.5"),
            ("g", "week'--"),
            ("g", "year"),
            ("d", "2024-02-30"),
            ("d", "now()"),
        ] {
            let err = q.render(&[(k.into(), v.into())]).unwrap_err();
            assert!(matches!(err, QueryError::BadParam { .. }), "{k}={v}: {err}");
        }
        assert!(q.render(&[("zzz".into(), "1".into())]).is_err());
    }

    #[test]
    fn typed_literals() {
        assert_eq!(ParamType::Float.literal("0.25").unwrap(), "0.25");
        assert_eq!(ParamType::Float.literal("2").unwrap(), "2.0");
        assert!(ParamType::Float.literal("NaN").is_err());
        assert!(ParamType::Float.literal("inf").is_err());
        assert_eq!(ParamType::Kind.literal("signup").unwrap(), "'signup'");
        assert!(ParamType::Kind.literal("signup' OR 1=1").is_err());
        assert_eq!(
            ParamType::Ranges.literal("1-7, 8-14").unwrap(),
            "(VALUES (1, 7), (8, 14))"
        );
        assert!(ParamType::Ranges.literal("7-1").is_err());
        assert!(ParamType::Ranges.literal("1-x").is_err());
        let e = ParamType::parse("enum(key|standard)").unwrap();
        assert_eq!(e.literal("key").unwrap(), "'key'");
        assert!(e.literal("gold").is_err());
        // An account id is a string literal with its quotes doubled: never SQL.
        let a = ParamType::parse("account").unwrap();
        assert_eq!(a.literal("acme-corp").unwrap(), "'acme-corp'");
        assert_eq!(a.literal("o'brien' OR 1=1 --").unwrap(), "'o''brien'' OR 1=1 --'");
        assert_eq!(a.literal("all").unwrap(), "CAST(NULL AS VARCHAR)");
        assert!(a.literal("").is_err());
        assert!(a.literal("a\nb").is_err());
    }

    #[test]
    fn partials_expand_and_unknown_ones_are_refused() {
        let q = find("retention_nday").expect("builtin");
        let sql = q.render(&[]).expect("renders");
        assert!(sql.contains("WITH ev AS (") && sql.contains("starts AS ("), "{sql}");
        assert!(!sql.contains("{{"), "{sql}");
        assert!(NamedQuery::parse("q", "-- d\n{{> nope}}\nSELECT 1").is_err());
    }

    #[test]
    fn undeclared_placeholder_is_an_error() {
        assert!(NamedQuery::parse("q", "-- d\nSELECT {{x}}").is_err());
        assert!(NamedQuery::parse("q", "-- d\n-- @param x:int nope d\nSELECT {{x}}").is_err());
    }
}
