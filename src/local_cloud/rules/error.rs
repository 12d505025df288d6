//! The error type that `Rule::parse` returns when it rejects SQL text.

use super::{MAX_NESTING_DEPTH, MAX_SQL_BYTES};

/// Names of the functions that the rules engine supports, for error messages.
pub(super) const SUPPORTED_FUNCTIONS: &str = "topic(), topic(n), timestamp(), clientid()";

/// Reason why a rule's SQL text was rejected.
///
/// Every `position` is a 1-based character index into the SQL text, so that an
/// editor can place the cursor on the offending token.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// The SQL text is longer than [`MAX_SQL_BYTES`].
    #[error("SQL text is {length} bytes long, but the maximum is {MAX_SQL_BYTES} bytes")]
    TooLong { length: usize },

    /// A character that starts no token of the language.
    #[error(
        "unexpected character {found:?} at position {position}: expected a keyword, \
         field name, literal, operator or parenthesis"
    )]
    UnexpectedCharacter { position: usize, found: char },

    /// A string literal without its closing quote.
    #[error(
        "unterminated string literal starting at position {position}: add the closing {quote} \
         (write {quote}{quote} for a quote inside the string)"
    )]
    UnterminatedString { position: usize, quote: char },

    /// A number literal that does not parse, or does not fit in a 64-bit float.
    #[error("invalid number `{text}` at position {position}: {detail}")]
    InvalidNumber {
        position: usize,
        text: String,
        detail: &'static str,
    },

    /// A token that the grammar does not allow at this place.
    #[error("expected {expected} at position {position}, found {found}")]
    UnexpectedToken {
        position: usize,
        expected: &'static str,
        found: String,
    },

    /// Text after the end of the statement.
    #[error(
        "unexpected {found} at position {position} after the end of the statement: \
         a statement ends after its WHERE condition, or after the FROM topic filter \
         when it has no WHERE clause"
    )]
    TrailingInput { position: usize, found: String },

    /// A call to a function that the rules engine does not implement.
    #[error(
        "unknown function `{name}` at position {position}: the supported functions are \
         {SUPPORTED_FUNCTIONS}"
    )]
    UnknownFunction { position: usize, name: String },

    /// A supported function called with the wrong number of arguments.
    #[error("function {name}() at position {position} takes {expected}, but was given {found}")]
    WrongArgumentCount {
        position: usize,
        name: &'static str,
        expected: &'static str,
        found: usize,
    },

    /// An expression nested deeper than [`MAX_NESTING_DEPTH`] levels.
    #[error(
        "expression at position {position} is nested deeper than {MAX_NESTING_DEPTH} levels: \
         remove parentheses or split the condition"
    )]
    TooDeep { position: usize },

    /// A FROM topic filter that breaks the MQTT topic filter syntax.
    #[error("invalid topic filter {filter:?} at position {position}: {detail}")]
    InvalidTopicFilter {
        position: usize,
        filter: String,
        detail: &'static str,
    },
}
