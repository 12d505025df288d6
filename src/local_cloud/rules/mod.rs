//! Rules engine of the local cloud: parses topic rules written in a subset of
//! `AWS IoT` SQL version 2016-03-23 and evaluates them against MQTT messages,
//! without any I/O.
//!
//! # Language
//!
//! ```text
//! SELECT <item>, ... FROM '<topic filter>' [WHERE <condition>]
//! ```
//!
//! - A SELECT item is `*`, a field (`temperature`), a nested field
//!   (`state.reported.temp`) or any expression, optionally followed by
//!   `AS alias`. `*` can be combined with other items.
//! - The FROM topic filter is quoted with `'` or `"` and may use the MQTT
//!   wildcards `+` and `#`.
//! - Expressions use `=`, `<>`, `!=`, `<`, `<=`, `>`, `>=`, `AND`, `OR`,
//!   `NOT`, `+`, `-`, `*`, `/`, `%`, unary minus and parentheses. Literals are
//!   numbers (`17`, `36.2`, `1e3`), strings in single or double quotes (a
//!   doubled quote escapes it), `TRUE`, `FALSE` and `NULL`.
//! - Functions: `topic()` returns the topic, `topic(n)` its n-th level counted
//!   from 1, `timestamp()` the time in [`EvalContext::timestamp_ms`], and
//!   `clientid()` is always Undefined here, because an MQTT subscriber does not
//!   receive the client ID of the publisher.
//! - Keywords and function names are case-insensitive, and field names are
//!   case-sensitive.
//!
//! # Output keys
//!
//! A bare field gets its last path segment as key, so `state.reported.temp`
//! becomes `temp`. An item with `AS` gets the alias. Any other item gets `_N`,
//! where N is its 1-based position in the SELECT list, counting `*`, so the
//! second item of `SELECT *, topic()` is `_2`. An item that evaluates to
//! Undefined, such as a missing field, is left out of the output, as in AWS.
//! When two items produce the same key, the later one wins.
//!
//! # Types
//!
//! - Undefined propagates through every operator except `AND` and `OR`, which
//!   use three-valued logic: false AND Undefined is false, true OR Undefined is
//!   true, and every other mix with Undefined is Undefined.
//! - Numbers are `i64` when whole and in range, and `f64` otherwise, in place of
//!   the 34-digit decimals of AWS. Integer arithmetic stays integer, so `7 / 2`
//!   is 3, and falls back to `f64` on overflow. A payload number selected
//!   unchanged keeps its JSON form, so `17` stays `17`.
//! - A string converts to a number for arithmetic and ordering only when it is
//!   a plain decimal literal: an optional `-`, digits, an optional fraction and
//!   an optional exponent (`e` or `E`, optional `-`). So "36.20", "-4" and "1e3"
//!   convert, while "36.2°C", "+4", " 4" and "" make the result Undefined.
//! - `=` and `<>` compare two strings as text, and two Booleans, arrays or
//!   objects by value. The ordering operators compare numbers, and convert
//!   strings as above even when both sides are strings.
//! - NULL (the literal, or a JSON `null` in the payload) compares only with
//!   NULL: `NULL = NULL` is true and `NULL <> NULL` is false. Every other
//!   comparison that involves NULL is Undefined.
//! - Comparing values of different types, other than a number with a
//!   convertible string, is Undefined. Division or remainder by zero, and any
//!   result beyond the `f64` range, is Undefined.
//! - `AND`, `OR` and `NOT` accept Booleans and the strings "true" and "false"
//!   in any letter case. The WHERE condition as a whole must be a Boolean.
//!
//! NOTE: AWS treats `+` with a string operand as concatenation, and `=` or `<>`
//! between mismatched types as false or true. This engine keeps `+` numeric
//! and makes mismatched comparisons Undefined, so that a reading sent as a
//! string ("36.20") behaves like the number in arithmetic and comparisons.

mod error;
mod eval;
mod lexer;
mod parser;
mod topic;

use std::str::FromStr;

use serde_json::{Map, Value as Json};

pub use error::RuleError;
pub use topic::topic_matches;

/// Maximum length of a rule's SQL text in bytes.
pub const MAX_SQL_BYTES: usize = 8 * 1024;

/// Maximum nesting of an expression: the depth of its syntax tree, and the
/// number of parentheses and prefix operators open at once. It bounds the
/// recursion of the parser and the evaluator, so that a rule at this limit
/// parses and evaluates within a 1 MiB thread stack even in a debug build.
pub const MAX_NESTING_DEPTH: usize = 64;

/// A parsed topic rule.
#[derive(Debug, Clone)]
pub struct Rule {
    sql: String,
    statement: parser::Statement,
}

/// Inputs of an evaluation that do not come from the message.
#[derive(Debug, Clone)]
pub struct EvalContext {
    /// Value of `timestamp()`, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// Outcome of evaluating a rule against one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// WHERE was true (or absent): the SELECT result as a JSON object.
    Matched(Map<String, Json>),
    /// The topic does not match the FROM filter.
    TopicMismatch,
    /// WHERE evaluated to false. The reason quotes the condition and the values
    /// of the fields it read.
    NotMatched { reason: String },
    /// WHERE evaluated to Undefined, so the rule does not fire, as in AWS. The
    /// reason names the operand and why it made the condition Undefined.
    Undefined { reason: String },
    /// The payload is not a JSON object: invalid JSON, or an array or scalar.
    InvalidPayload { reason: String },
}

impl Rule {
    /// Parses a rule from its SQL text.
    ///
    /// # Errors
    ///
    /// Returns a [`RuleError`] when the text is longer than [`MAX_SQL_BYTES`],
    /// nests deeper than [`MAX_NESTING_DEPTH`] or breaks the grammar. The error
    /// names the offending token, its position and what was expected there.
    pub fn parse(sql: &str) -> Result<Self, RuleError> {
        if sql.len() > MAX_SQL_BYTES {
            return Err(RuleError::TooLong { length: sql.len() });
        }
        let statement = parser::parse_statement(sql)?;
        Ok(Self {
            sql: sql.to_owned(),
            statement,
        })
    }

    /// Returns the SQL text that the rule was parsed from.
    #[must_use]
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Returns the FROM topic filter without its quotes.
    #[must_use]
    pub fn topic_filter(&self) -> &str {
        &self.statement.topic_filter
    }

    /// Evaluates the rule against a message published on `topic`.
    ///
    /// The checks run in order: the topic against the FROM filter, then the
    /// payload, which must be a JSON object, then the WHERE condition. Only when
    /// all pass is the SELECT list evaluated.
    #[must_use]
    pub fn evaluate(&self, topic: &str, payload: &[u8], context: &EvalContext) -> Evaluation {
        if !topic_matches(&self.statement.topic_filter, topic) {
            return Evaluation::TopicMismatch;
        }
        let document = match parse_payload(payload) {
            Ok(document) => document,
            Err(reason) => return Evaluation::InvalidPayload { reason },
        };
        let Json::Object(object) = &document else {
            let kind = match document {
                Json::Array(_) => "an array",
                Json::String(_) => "a string",
                Json::Number(_) => "a number",
                Json::Bool(_) => "a Boolean",
                Json::Null | Json::Object(_) => "null",
            };
            return Evaluation::InvalidPayload {
                reason: format!(
                    "payload is {kind}, but a rule needs a JSON object such as {{\"temperature\": 36.2}}"
                ),
            };
        };
        let scope = eval::Scope {
            sql: &self.sql,
            topic,
            payload: object,
            timestamp_ms: context.timestamp_ms,
        };
        eval::evaluate_statement(&self.statement, &scope)
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(sql: &str) -> Result<Self, Self::Err> {
        Self::parse(sql)
    }
}

/// Parses a payload as JSON, or returns a reason that quotes its start.
fn parse_payload(payload: &[u8]) -> Result<Json, String> {
    const MAX_QUOTED_BYTES: usize = 60;
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err("payload is empty, but a rule needs a JSON object".to_owned());
    }
    serde_json::from_slice(payload).map_err(|error| {
        let start = payload.get(..MAX_QUOTED_BYTES).unwrap_or(payload);
        let ellipsis = if start.len() < payload.len() {
            "…"
        } else {
            ""
        };
        format!(
            "payload is not valid JSON ({error}): {}{ellipsis}",
            String::from_utf8_lossy(start)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOPIC: &str = "Emulators/Weather/SensorReadings";
    const DEFAULT_RULE: &str =
        "SELECT temperature, deviceId, seq, timestamp FROM 'Emulators/Weather/SensorReadings'";
    const TUTORIAL_PAYLOAD: &str = r#"{"deviceId":"WeatherStationEmulator","timestamp":"2024-05-01T10:00:00.000Z","temperature":"36.20","humidity":"55","pressure":"1012.3"}"#;
    const NOW_MS: i64 = 1_714_557_600_000;

    fn evaluate_on(sql: &str, topic: &str, payload: &str) -> Evaluation {
        let context = EvalContext {
            timestamp_ms: NOW_MS,
        };
        Rule::parse(sql)
            .unwrap()
            .evaluate(topic, payload.as_bytes(), &context)
    }

    fn evaluate(sql: &str, payload: &str) -> Evaluation {
        evaluate_on(sql, TOPIC, payload)
    }

    fn object(value: Json) -> Map<String, Json> {
        let Json::Object(map) = value else {
            panic!("expected a JSON object, got {value}");
        };
        map
    }

    fn matched(value: Json) -> Evaluation {
        Evaluation::Matched(object(value))
    }

    /// Evaluates `SELECT <expression> AS v` and returns `v`, or `None` if it was left out.
    fn select_value(expression: &str, payload: &str) -> Option<Json> {
        let sql = format!("SELECT {expression} AS v FROM '{TOPIC}'");
        match evaluate(&sql, payload) {
            Evaluation::Matched(mut map) => map.remove("v"),
            other => panic!("{sql}: expected Matched, got {other:?}"),
        }
    }

    fn where_reason(condition: &str, payload: &str) -> (String, String) {
        let sql = format!("SELECT * FROM '{TOPIC}' WHERE {condition}");
        match evaluate(&sql, payload) {
            Evaluation::NotMatched { reason } => ("NotMatched".to_owned(), reason),
            Evaluation::Undefined { reason } => ("Undefined".to_owned(), reason),
            Evaluation::Matched(_) => ("Matched".to_owned(), String::new()),
            other => panic!("{sql}: unexpected {other:?}"),
        }
    }

    #[test]
    fn default_rule_numeric_reading() {
        let payload = r#"{"deviceId":"WeatherStationEmulator","seq":17,"timestamp":"2024-05-01T10:00:00.000Z","temperature":36.2,"humidity":55,"pressure":1012.3}"#;
        let expected = matched(json!({
            "temperature": 36.2,
            "deviceId": "WeatherStationEmulator",
            "seq": 17,
            "timestamp": "2024-05-01T10:00:00.000Z",
        }));
        let result = evaluate(DEFAULT_RULE, payload);
        assert_eq!(result, expected);
        let Evaluation::Matched(map) = result else {
            panic!("expected Matched");
        };
        assert!(map["seq"].is_i64(), "seq must stay an integer");
    }

    #[test]
    fn default_rule_tutorial_payload() {
        let expected = matched(json!({
            "temperature": "36.20",
            "deviceId": "WeatherStationEmulator",
            "timestamp": "2024-05-01T10:00:00.000Z",
        }));
        assert_eq!(evaluate(DEFAULT_RULE, TUTORIAL_PAYLOAD), expected);
    }

    #[test]
    fn tutorial_rule_select_temperature() {
        let sql = "SELECT temperature FROM 'Emulators/Weather/SensorReadings'";
        assert_eq!(
            evaluate(sql, TUTORIAL_PAYLOAD),
            matched(json!({"temperature": "36.20"}))
        );
        assert_eq!(evaluate(sql, r#"{"humidity": 55}"#), matched(json!({})));
    }

    #[test]
    fn select_list_cases() {
        let payload = r#"{"a": 1, "b": "x", "n": null, "state": {"reported": {"temp": 21.5}}, "list": [1, 2]}"#;
        let cases = [
            (
                "SELECT *",
                json!({"a": 1, "b": "x", "n": null, "state": {"reported": {"temp": 21.5}}, "list": [1, 2]}),
            ),
            (
                "SELECT *, topic() AS t",
                json!({"a": 1, "b": "x", "n": null, "state": {"reported": {"temp": 21.5}}, "list": [1, 2], "t": TOPIC}),
            ),
            ("SELECT state.reported.temp", json!({"temp": 21.5})),
            ("SELECT state.reported", json!({"reported": {"temp": 21.5}})),
            (
                "SELECT state.reported.temp AS t, a",
                json!({"t": 21.5, "a": 1}),
            ),
            ("SELECT a + 1, b", json!({"_1": 2, "b": "x"})),
            (
                "SELECT b, topic(2), timestamp()",
                json!({"b": "x", "_2": "Weather", "_3": NOW_MS}),
            ),
            (
                "SELECT missing, a.b, state.missing.temp, clientid(), a",
                json!({"a": 1}),
            ),
            ("SELECT n, list", json!({"n": null, "list": [1, 2]})),
            (
                "SELECT NULL AS n2, TRUE AS yes, 'it''s' AS s",
                json!({"n2": null, "yes": true, "s": "it's"}),
            ),
            ("SELECT a, b AS a", json!({"a": "x"})),
            ("SELECT 1 / 0 AS bad, a", json!({"a": 1})),
        ];
        for (select, expected) in cases {
            let sql = format!("{select} FROM '{TOPIC}'");
            assert_eq!(evaluate(&sql, payload), matched(expected), "{sql}");
        }
    }

    #[test]
    fn from_wildcards() {
        let payload = r#"{"a": 1}"#;
        let cases = [
            (
                "Emulators/+/SensorReadings",
                "Emulators/Weather/SensorReadings",
                true,
            ),
            (
                "Emulators/+/SensorReadings",
                "Emulators/Weather/Other",
                false,
            ),
            ("Emulators/#", "Emulators/Weather/SensorReadings", true),
            ("Emulators/#", "Emulators", true),
            ("Emulators/#", "Other/Weather", false),
            ("#", "any/topic/at/all", true),
            ("+/+", "a/b", true),
            ("+/+", "a/b/c", false),
        ];
        for (filter, topic, matches) in cases {
            let sql = format!("SELECT a FROM '{filter}'");
            let expected = if matches {
                matched(json!({"a": 1}))
            } else {
                Evaluation::TopicMismatch
            };
            assert_eq!(
                evaluate_on(&sql, topic, payload),
                expected,
                "{filter} on {topic}"
            );
        }
    }

    #[test]
    fn from_double_quotes() {
        let rule = Rule::parse("SELECT a FROM \"Emulators/+/SensorReadings\"").unwrap();
        assert_eq!(rule.topic_filter(), "Emulators/+/SensorReadings");
    }

    #[test]
    fn rule_accessors_and_from_str() {
        let sql = "select temperature from 'a/b' where temperature > 1";
        let rule: Rule = sql.parse().unwrap();
        assert_eq!(rule.sql(), sql);
        assert_eq!(rule.topic_filter(), "a/b");
        assert!("SELECT FROM 'a'".parse::<Rule>().is_err());
    }

    #[test]
    fn where_string_temperature() {
        let cases = [
            (r#"{"temperature": "36.20"}"#, "temperature > 35", true),
            (r#"{"temperature": "36.20"}"#, "temperature > 36.2", false),
            (r#"{"temperature": "36.20"}"#, "temperature = 36.2", true),
            (r#"{"temperature": "-4"}"#, "temperature < 0", true),
            (r#"{"temperature": "1e3"}"#, "temperature = 1000", true),
            (r#"{"temperature": 36.2}"#, "temperature > 35", true),
            (r#"{"temperature": 36.2}"#, "temperature > '35'", true),
            (r#"{"temperature": "36.20"}"#, "temperature > '35'", true),
            (r#"{"temperature": "36.20"}"#, "temperature = '36.2'", false),
        ];
        for (payload, condition, expected_match) in cases {
            let (kind, reason) = where_reason(condition, payload);
            let expected = if expected_match {
                "Matched"
            } else {
                "NotMatched"
            };
            assert_eq!(kind, expected, "{condition} on {payload}: {reason}");
        }
    }

    #[test]
    fn where_undefined_operands() {
        let cases = [
            (
                r#"{"temperature": "36.2°C"}"#,
                "temperature > 35",
                r#"temperature > 35: temperature is "36.2°C", which is not a decimal number, so the comparison is Undefined"#,
            ),
            (
                r#"{"temperature": ""}"#,
                "temperature > 35",
                r#"temperature > 35: temperature is "", which is not a decimal number"#,
            ),
            (
                r#"{"humidity": 55}"#,
                "temperature > 35",
                "temperature > 35: temperature is missing from the payload, so the comparison is Undefined",
            ),
            (
                r#"{"state": 3}"#,
                "state.reported.temp > 35",
                "state.reported.temp is missing because state is 3, not an object",
            ),
            (
                r#"{"temperature": 36}"#,
                "temperature > 'abc'",
                r#"temperature > 'abc': "abc" is not a decimal number"#,
            ),
            (
                r#"{"temperature": 36}"#,
                "temperature",
                "WHERE temperature evaluated to 36, which is not a Boolean",
            ),
            (
                r#"{"a": 1}"#,
                "missing",
                "WHERE missing: missing is missing from the payload, so the condition is Undefined",
            ),
        ];
        for (payload, condition, fragment) in cases {
            let (kind, reason) = where_reason(condition, payload);
            assert_eq!(kind, "Undefined", "{condition} on {payload}: {reason}");
            assert!(
                reason.contains(fragment),
                "{condition} on {payload}: {reason:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn where_undefined_operators() {
        let cases = [
            (
                r#"{"a": 1}"#,
                "a = TRUE",
                "a = TRUE: cannot compare the number 1 with the Boolean true",
            ),
            (r#"{"a": true}"#, "a > FALSE", "Booleans have no order"),
            (
                r#"{"a": null}"#,
                "a = 1",
                "a = 1: a comparison with NULL is Undefined",
            ),
            (
                r#"{"a": null}"#,
                "a > NULL",
                "comparison with NULL is Undefined",
            ),
            (
                r#"{"a": [1]}"#,
                "a < 2",
                "cannot compare the array [1] with the number 2",
            ),
            (
                r#"{"a": 1}"#,
                "a / 0 > 1",
                "a / 0: division by zero, so the result is Undefined",
            ),
            (r#"{"a": 1}"#, "a % 0 = 0", "a % 0: division by zero"),
            (
                r#"{"a": "x"}"#,
                "-a < 0",
                r#"-a: a is "x", which is not a decimal number, so the result is Undefined"#,
            ),
            (
                r#"{"a": 1}"#,
                "clientid() = 'dev'",
                "clientid() = 'dev': clientid() is always Undefined in the local cloud",
            ),
            (
                r#"{"a": 1}"#,
                "topic(4) = 'x'",
                r#"topic(4): topic "Emulators/Weather/SensorReadings" has only 3 levels"#,
            ),
            (
                r#"{"a": 1}"#,
                "topic(0) = 'x'",
                "topic(0): 0 is not a whole number of 1 or more",
            ),
            (
                r#"{"a": 1}"#,
                "NOT a",
                "NOT a: a is 1, which is not a Boolean, so the condition is Undefined",
            ),
            (
                r#"{"a": 1}"#,
                "1e300 * 1e300 > 0",
                "out of range for a 64-bit float",
            ),
        ];
        for (payload, condition, fragment) in cases {
            let (kind, reason) = where_reason(condition, payload);
            assert_eq!(kind, "Undefined", "{condition} on {payload}: {reason}");
            assert!(
                reason.contains(fragment),
                "{condition} on {payload}: {reason:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn where_false_reasons() {
        let cases = [
            (
                r#"{"temperature": 30}"#,
                "temperature > 35",
                "WHERE temperature > 35 is false for temperature = 30",
            ),
            (
                r#"{"temperature": "30.5"}"#,
                "temperature > 35",
                r#"WHERE temperature > 35 is false for temperature = "30.5""#,
            ),
            (
                r#"{"temperature": 36, "humidity": 20}"#,
                "temperature > 35 AND humidity > 50",
                "is false for temperature = 36, humidity = 20",
            ),
            (
                r#"{"a": 0}"#,
                "a > 1 AND b > 1",
                "is false for a = 0, b is missing",
            ),
            (r#"{"a": 1}"#, "1 > 2", "WHERE 1 > 2 is false"),
            (r#"{"a": 1}"#, "a = 1 AND a = 2", "is false for a = 1"),
        ];
        for (payload, condition, fragment) in cases {
            let (kind, reason) = where_reason(condition, payload);
            assert_eq!(kind, "NotMatched", "{condition} on {payload}: {reason}");
            assert!(
                reason.contains(fragment),
                "{condition} on {payload}: {reason:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn where_three_valued_logic() {
        // `u` is missing, so any comparison on it is Undefined.
        let payload = r#"{"t": true, "f": false, "s": "TRUE", "n": 1}"#;
        let cases = [
            ("t AND t", "Matched"),
            ("t AND f", "NotMatched"),
            ("f AND u > 1", "NotMatched"),
            ("u > 1 AND f", "NotMatched"),
            ("t AND u > 1", "Undefined"),
            ("u > 1 AND t", "Undefined"),
            ("u > 1 AND u > 2", "Undefined"),
            ("t OR u > 1", "Matched"),
            ("u > 1 OR t", "Matched"),
            ("f OR u > 1", "Undefined"),
            ("u > 1 OR f", "Undefined"),
            ("f OR f", "NotMatched"),
            ("NOT f", "Matched"),
            ("NOT t", "NotMatched"),
            ("NOT u > 1", "Undefined"),
            ("NOT (u > 1 AND f)", "Matched"),
            ("s AND t", "Matched"),
            ("NOT s", "NotMatched"),
            ("n AND t", "Undefined"),
            ("f AND n", "NotMatched"),
            ("t OR n", "Matched"),
            ("NULL = NULL", "Matched"),
            ("NULL <> NULL", "NotMatched"),
            ("t = TRUE", "Matched"),
            ("t <> f", "Matched"),
            ("s = 'TRUE'", "Matched"),
            ("s", "Undefined"),
        ];
        for (condition, expected) in cases {
            let (kind, reason) = where_reason(condition, payload);
            assert_eq!(kind, expected, "{condition}: {reason}");
        }
    }

    #[test]
    fn where_undefined_and_names_operand() {
        let (kind, reason) = where_reason("t AND u > 1", r#"{"t": true}"#);
        assert_eq!(kind, "Undefined");
        assert_eq!(
            reason,
            "u > 1: u is missing from the payload, so the comparison is Undefined"
        );
    }

    #[test]
    fn arithmetic_values() {
        let payload = r#"{"seq": 17, "t": 36.5, "s": "36.20", "i": "4", "bad": "36.2°C", "big": 9223372036854775807}"#;
        let cases = [
            ("seq + 1", Some(json!(18))),
            ("seq - 20", Some(json!(-3))),
            ("seq * 2", Some(json!(34))),
            ("seq / 2", Some(json!(8))),
            ("seq % 5", Some(json!(2))),
            ("-seq", Some(json!(-17))),
            ("seq / 2.0", Some(json!(8.5))),
            ("t * 2", Some(json!(73.0))),
            ("t - 0.5", Some(json!(36.0))),
            ("t % 10", Some(json!(6.5))),
            ("(t - 32) * 5 / 9", Some(json!((36.5 - 32.0) * 5.0 / 9.0))),
            ("1 + 2 * 3", Some(json!(7))),
            ("(1 + 2) * 3", Some(json!(9))),
            ("2 - -3", Some(json!(5))),
            ("1e3 + 1", Some(json!(1001.0))),
            ("s + 1", Some(json!(37.2))),
            ("i * 2", Some(json!(8))),
            ("'2' * '3'", Some(json!(6))),
            ("big + 1", Some(json!(9_223_372_036_854_775_808.0))),
            ("bad + 1", None),
            ("seq / 0", None),
            ("t / 0", None),
            ("seq % 0", None),
            ("missing + 1", None),
            ("TRUE + 1", None),
            ("NULL + 1", None),
            ("timestamp() + 1", Some(json!(NOW_MS + 1))),
            ("timestamp() / 1000", Some(json!(NOW_MS / 1000))),
        ];
        for (expression, expected) in cases {
            assert_eq!(select_value(expression, payload), expected, "{expression}");
        }
    }

    #[test]
    fn functions_values() {
        let payload = r#"{"level": 3, "name": "2"}"#;
        let cases = [
            ("topic()", Some(json!(TOPIC))),
            ("topic(1)", Some(json!("Emulators"))),
            ("topic(2)", Some(json!("Weather"))),
            ("topic(3)", Some(json!("SensorReadings"))),
            ("topic(level)", Some(json!("SensorReadings"))),
            ("topic(name)", Some(json!("Weather"))),
            ("topic(1 + 1)", Some(json!("Weather"))),
            ("TOPIC(2)", Some(json!("Weather"))),
            ("topic(4)", None),
            ("topic(0)", None),
            ("topic(-1)", None),
            ("topic(1.5)", None),
            ("topic(missing)", None),
            ("timestamp()", Some(json!(NOW_MS))),
            ("clientid()", None),
            ("ClientId()", None),
        ];
        for (expression, expected) in cases {
            assert_eq!(select_value(expression, payload), expected, "{expression}");
        }
    }

    #[test]
    fn where_functions() {
        let cases = [
            ("topic(2) = 'Weather'", "Matched"),
            ("topic(2) = 'Other'", "NotMatched"),
            ("topic() = 'Emulators/Weather/SensorReadings'", "Matched"),
            ("timestamp() > 0", "Matched"),
            ("timestamp() = 1714557600000", "Matched"),
            ("clientid() = 'x'", "Undefined"),
            ("clientid() <> 'x'", "Undefined"),
        ];
        for (condition, expected) in cases {
            let (kind, reason) = where_reason(condition, "{}");
            assert_eq!(kind, expected, "{condition}: {reason}");
        }
    }

    #[test]
    fn where_comparison_operators() {
        let payload = r#"{"a": 5, "b": 5.0, "s": "abc", "o": {"x": 1, "y": [2]}, "p": {"y": [2], "x": 1}, "l": [1, "a"]}"#;
        let cases = [
            ("a = 5", "Matched"),
            ("a = b", "Matched"),
            ("a <> 5", "NotMatched"),
            ("a != 4", "Matched"),
            ("a < 6", "Matched"),
            ("a <= 5", "Matched"),
            ("a > 5", "NotMatched"),
            ("a >= 5.0", "Matched"),
            ("s = 'abc'", "Matched"),
            ("s = \"abc\"", "Matched"),
            ("s <> 'ABC'", "Matched"),
            ("s < 'abd'", "Undefined"),
            ("s = 5", "Undefined"),
            ("o = p", "Matched"),
            ("o <> p", "NotMatched"),
            ("l = l", "Matched"),
            ("l = o", "Undefined"),
            ("'10' > '9'", "Matched"),
            ("1 < 2 < 3", "Undefined"),
        ];
        for (condition, expected) in cases {
            let (kind, reason) = where_reason(condition, payload);
            assert_eq!(kind, expected, "{condition}: {reason}");
        }
    }

    #[test]
    fn where_keywords_case_insensitive() {
        let sql = "select temperature from 'Emulators/#' where temperature > 35 and not false";
        assert_eq!(
            evaluate(sql, TUTORIAL_PAYLOAD),
            matched(json!({"temperature": "36.20"}))
        );
    }

    #[test]
    fn field_names_case_sensitive() {
        let sql = format!("SELECT Temperature FROM '{TOPIC}'");
        assert_eq!(evaluate(&sql, TUTORIAL_PAYLOAD), matched(json!({})));
    }

    #[test]
    fn invalid_payloads() {
        let cases: [(&[u8], &str); 9] = [
            (b"not json", "payload is not valid JSON"),
            (b"{\"temperature\": 36.2", "payload is not valid JSON"),
            (b"", "payload is empty"),
            (b"  \n", "payload is empty"),
            (b"[1, 2]", "payload is an array"),
            (b"36.2", "payload is a number"),
            (b"\"36.2\"", "payload is a string"),
            (b"null", "payload is null"),
            (b"\xff\xfe", "payload is not valid JSON"),
        ];
        let rule = Rule::parse(DEFAULT_RULE).unwrap();
        let context = EvalContext {
            timestamp_ms: NOW_MS,
        };
        for (payload, fragment) in cases {
            let result = rule.evaluate(TOPIC, payload, &context);
            let Evaluation::InvalidPayload { reason } = result else {
                panic!("{payload:?}: expected InvalidPayload, got {result:?}");
            };
            assert!(
                reason.contains(fragment),
                "{payload:?}: {reason:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn invalid_payload_quotes_start() {
        let payload = format!("temperature={}", "9".repeat(200));
        let Evaluation::InvalidPayload { reason } = evaluate(DEFAULT_RULE, &payload) else {
            panic!("expected InvalidPayload");
        };
        assert!(reason.contains("at line 1 column"), "{reason}");
        assert!(reason.contains("temperature=999"), "{reason}");
        assert!(reason.ends_with('…'), "{reason}");
        assert!(reason.len() < 200, "{reason}");
    }

    #[test]
    fn topic_mismatch_before_payload() {
        let result = evaluate_on(DEFAULT_RULE, "Other/Topic", "not json");
        assert_eq!(result, Evaluation::TopicMismatch);
    }

    #[test]
    fn parse_error_messages() {
        let cases = [
            (
                "SELECT temperature",
                "expected `,`, AS or FROM after a SELECT item at position 19, found end of input",
            ),
            (
                "SELECT temperature FROM 'Emulators/#",
                "unterminated string literal starting at position 25",
            ),
            (
                "SELECT temperature FROM 'a' WHERE celsius(temperature) > 35",
                "unknown function `celsius` at position 35: the supported functions are topic(), topic(n), timestamp(), clientid()",
            ),
            (
                "SELECT temperature FROM 'a' WHERE temperature > 35 35",
                "unexpected number 35 at position 52 after the end of the statement",
            ),
            (
                "SELECT temperature FROM 'a' ORDER BY x",
                "unexpected name `ORDER` at position 29",
            ),
            (
                "SELECT temperature FROM 'a' WHERE temperature > 35;",
                "unexpected character ';' at position 51",
            ),
        ];
        for (sql, fragment) in cases {
            let message = Rule::parse(sql).unwrap_err().to_string();
            assert!(
                message.contains(fragment),
                "{sql:?}: {message:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn parse_rejects_long_sql() {
        let padding = " ".repeat(MAX_SQL_BYTES);
        let sql = format!("SELECT a FROM 'a'{padding}");
        let error = Rule::parse(&sql).unwrap_err();
        assert_eq!(error, RuleError::TooLong { length: sql.len() });
        assert!(
            error.to_string().contains("maximum is 8192 bytes"),
            "{error}"
        );

        let at_limit = format!("SELECT a FROM 'a'{}", " ".repeat(MAX_SQL_BYTES - 17));
        assert!(Rule::parse(&at_limit).is_ok());
    }

    #[test]
    fn parse_rejects_deep_nesting() {
        let sql = format!(
            "SELECT a FROM 'a' WHERE {}a > 1{}",
            "(".repeat(100),
            ")".repeat(100)
        );
        let error = Rule::parse(&sql).unwrap_err();
        assert!(matches!(error, RuleError::TooDeep { .. }), "{error:?}");
        assert!(
            error.to_string().contains("nested deeper than 64 levels"),
            "{error}"
        );

        let chain = format!("SELECT a FROM 'a' WHERE a{} > 1", " + a".repeat(2000));
        assert!(matches!(
            Rule::parse(&chain),
            Err(RuleError::TooDeep { .. })
        ));
    }

    #[test]
    fn deepest_rule_evaluates() {
        let sql = format!(
            "SELECT a FROM 'a' WHERE {}a{} > 1",
            "(".repeat(62),
            " + 1)".repeat(62)
        );
        let rule = Rule::parse(&sql).unwrap();
        let context = EvalContext { timestamp_ms: 0 };
        assert_eq!(
            rule.evaluate("a", br#"{"a": 1}"#, &context),
            matched(json!({"a": 1}))
        );
    }

    #[test]
    fn deepest_rules_fit_one_mib_stack() {
        let rules = [
            format!(
                "SELECT * FROM '#' WHERE {}a{} > 1",
                "(".repeat(62),
                " + 1)".repeat(62)
            ),
            format!("SELECT * FROM '#' WHERE {}(a > 1)", "NOT ".repeat(62)),
            format!("SELECT * FROM '#' WHERE {}1", "- ".repeat(63)),
            format!("SELECT * FROM '#' WHERE a = 1{}", " AND b > 2".repeat(62)),
            format!("SELECT {}1{} FROM '#'", "topic(".repeat(63), ")".repeat(63)),
            format!(
                "SELECT * FROM '#' WHERE {}a{}",
                "(".repeat(64),
                ")".repeat(64)
            ),
        ];
        let worker = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let context = EvalContext { timestamp_ms: 0 };
                rules
                    .iter()
                    .map(|sql| {
                        let rule = Rule::parse(sql).unwrap();
                        rule.evaluate("a/b", br#"{"a": "x"}"#, &context)
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap();
        let results = worker.join().unwrap();
        assert_eq!(results.len(), 6);
        assert!(
            matches!(results[4], Evaluation::Matched(_)),
            "{:?}",
            results[4]
        );
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let rules = [
            "SELECT * FROM '#'",
            "SELECT a.b.c, -a, NOT a, topic(a) FROM '#' WHERE a.b.c = a",
        ];
        let payloads: [&[u8]; 6] = [
            br#"{"a": {"b": {"c": [1, {"d": null}]}}}"#,
            br#"{"a": 18446744073709551615}"#,
            br#"{"a": -9223372036854775808}"#,
            br#"{"a": 1e308}"#,
            br#"{"a": "\u0000\ud83d\ude00"}"#,
            br#"{"a": "x", "a": "y"}"#,
        ];
        let context = EvalContext {
            timestamp_ms: i64::MIN,
        };
        for sql in rules {
            let rule = Rule::parse(sql).unwrap();
            for payload in payloads {
                let result = rule.evaluate("$weird/+topic", payload, &context);
                assert_eq!(result, Evaluation::TopicMismatch, "{sql}");
                let result = rule.evaluate("a/b", payload, &context);
                let is_evaluated = matches!(
                    result,
                    Evaluation::Matched(_)
                        | Evaluation::NotMatched { .. }
                        | Evaluation::Undefined { .. }
                );
                assert!(is_evaluated, "{sql} on {payload:?}: {result:?}");
            }
        }

        let deep_payload = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
        let rule = Rule::parse("SELECT * FROM '#'").unwrap();
        let result = rule.evaluate("a", deep_payload.as_bytes(), &context);
        assert!(
            matches!(result, Evaluation::InvalidPayload { .. }),
            "{result:?}"
        );
    }
}
