//! Evaluates a parsed statement against one JSON payload with the type rules of
//! `AWS IoT` SQL version 2016-03-23, and explains every false or Undefined result.
//!
//! An expression evaluates to a [`Datum`] or to [`Undefined`], which carries the
//! reason. Undefined propagates through every operator except `AND` and `OR`,
//! which use three-valued logic.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Number as JsonNumber, Value as Json};

use super::Evaluation;
use super::parser::{
    ArithmeticOperator, BinaryOperator, ComparisonOperator, Expr, ExprKind, Function, Literal,
    LogicalOperator, SelectItem, Statement, UnaryOperator,
};

/// Maximum number of characters of a value that a reason quotes, so that a large
/// payload field does not flood a trace.
const MAX_QUOTED_CHARS: usize = 60;

const CLIENT_ID_REASON: &str = "clientid() is always Undefined in the local cloud, because an \
     MQTT subscriber does not receive the client ID of the publisher";

/// Inputs that expressions read during one evaluation.
pub(super) struct Scope<'a> {
    /// The full SQL text, which the spans of the expressions index into.
    pub sql: &'a str,
    pub topic: &'a str,
    pub payload: &'a Map<String, Json>,
    pub timestamp_ms: i64,
}

impl<'a> Scope<'a> {
    /// Returns the source text of an expression, for reasons.
    fn text(&self, expr: &Expr) -> &'a str {
        self.sql.get(expr.start..expr.end).unwrap_or_default()
    }
}

/// Evaluates the WHERE condition and, if it is true, the SELECT list.
pub(super) fn evaluate_statement(statement: &Statement, scope: &Scope<'_>) -> Evaluation {
    if let Some(condition) = &statement.condition
        && let Some(rejection) = check_condition(condition, scope)
    {
        return rejection;
    }
    Evaluation::Matched(select(&statement.select, scope))
}

/// Returns `None` when the condition is true, and otherwise the evaluation
/// that explains why the rule does not fire.
fn check_condition(condition: &Expr, scope: &Scope<'_>) -> Option<Evaluation> {
    let text = scope.text(condition);
    let datum = match evaluate(condition, scope) {
        Ok(datum) => datum,
        Err(undefined) => {
            let reason = undefined
                .within(&format!("WHERE {text}"), "the condition")
                .reason;
            return Some(Evaluation::Undefined { reason });
        }
    };
    match datum.operand() {
        Operand::Bool(true) => None,
        Operand::Bool(false) => Some(Evaluation::NotMatched {
            reason: format!("WHERE {text} is false{}", field_summary(condition, scope)),
        }),
        other => Some(Evaluation::Undefined {
            reason: format!(
                "WHERE {text} evaluated to {}, which is not a Boolean, so the condition is Undefined",
                render(&other)
            ),
        }),
    }
}

/// Builds the output object. Items that evaluate to Undefined are left out, and
/// a later item replaces an earlier one with the same key.
fn select(items: &[SelectItem], scope: &Scope<'_>) -> Map<String, Json> {
    let mut output = Map::new();
    for item in items {
        match item {
            SelectItem::Wildcard => {
                output.extend(
                    scope
                        .payload
                        .iter()
                        .map(|(key, value)| (key.clone(), value.clone())),
                );
            }
            SelectItem::Expression { expr, key } => {
                if let Ok(datum) = evaluate(expr, scope)
                    && let Some(value) = datum.into_json()
                {
                    output.insert(key.clone(), value);
                }
            }
        }
    }
    output
}

/// Reason why an expression evaluated to Undefined.
struct Undefined {
    reason: String,
    /// Whether `reason` already quotes the expression that became Undefined. A
    /// missing field or `clientid()` does not, so the first operator that
    /// receives it puts its own text in front.
    has_context: bool,
}

impl Undefined {
    fn bare(reason: String) -> Self {
        Self {
            reason,
            has_context: false,
        }
    }

    fn in_context(reason: String) -> Self {
        Self {
            reason,
            has_context: true,
        }
    }

    /// Puts the text of the enclosing expression in front of a bare reason.
    fn within(self, expr_text: &str, subject: &str) -> Self {
        if self.has_context {
            self
        } else {
            Self::in_context(format!(
                "{expr_text}: {}, so {subject} is Undefined",
                self.reason
            ))
        }
    }
}

/// A defined value. Payload values stay borrowed until the SELECT list copies
/// them, so a selected field keeps its exact JSON form, such as `17` or `"36.20"`.
enum Datum<'a> {
    Json(&'a Json),
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
}

/// A number from the payload, a literal or an operator. Integers that fit in
/// `i64` stay integers, and everything else is a finite `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn to_f64(self) -> f64 {
        match self {
            Self::Int(value) => int_to_f64(value),
            Self::Float(value) => value,
        }
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "integers beyond 2^53 lose precision only when mixed with floats"
)]
fn int_to_f64(value: i64) -> f64 {
    value as f64
}

/// A view of a [`Datum`] by type, which the operators match on.
enum Operand<'v> {
    Null,
    Bool(bool),
    Number(Number),
    String(&'v str),
    Array(&'v Json),
    Object(&'v Json),
}

impl<'a> Datum<'a> {
    fn operand(&self) -> Operand<'_> {
        match self {
            Self::Json(value) => json_operand(value),
            Self::Null => Operand::Null,
            Self::Bool(value) => Operand::Bool(*value),
            Self::Number(value) => Operand::Number(*value),
            Self::String(value) => Operand::String(value),
        }
    }

    /// Converts the value for the output object, or returns `None` for a float
    /// that JSON cannot represent.
    fn into_json(self) -> Option<Json> {
        match self {
            Self::Json(value) => Some(value.clone()),
            Self::Null => Some(Json::Null),
            Self::Bool(value) => Some(Json::Bool(value)),
            Self::Number(Number::Int(value)) => Some(Json::from(value)),
            Self::Number(Number::Float(value)) => JsonNumber::from_f64(value).map(Json::Number),
            Self::String(value) => Some(Json::String(value.into_owned())),
        }
    }

    fn from_literal(literal: &'a Literal) -> Self {
        match literal {
            Literal::Null => Self::Null,
            Literal::Bool(value) => Self::Bool(*value),
            Literal::Int(value) => Self::Number(Number::Int(*value)),
            Literal::Float(value) => Self::Number(Number::Float(*value)),
            Literal::String(value) => Self::String(Cow::Borrowed(value)),
        }
    }
}

fn json_operand(value: &Json) -> Operand<'_> {
    match value {
        Json::Null => Operand::Null,
        Json::Bool(value) => Operand::Bool(*value),
        // NOTE: without serde_json's `arbitrary_precision` feature `as_f64` always
        // succeeds. With it, an out-of-range number becomes NaN, and the
        // operators then report it as not comparable or out of range.
        Json::Number(number) => Operand::Number(number.as_i64().map_or_else(
            || Number::Float(number.as_f64().unwrap_or(f64::NAN)),
            Number::Int,
        )),
        Json::String(text) => Operand::String(text),
        Json::Array(_) => Operand::Array(value),
        Json::Object(_) => Operand::Object(value),
    }
}

fn evaluate<'a>(expr: &'a Expr, scope: &Scope<'a>) -> Result<Datum<'a>, Undefined> {
    match &expr.kind {
        ExprKind::Literal(literal) => Ok(Datum::from_literal(literal)),
        ExprKind::Field(path) => lookup_field(path, scope).map(Datum::Json),
        ExprKind::Function(function) => call_function(function, expr, scope),
        ExprKind::Unary(UnaryOperator::Not, operand) => {
            truth(operand, scope.text(expr), scope).map(|value| Datum::Bool(!value))
        }
        ExprKind::Unary(UnaryOperator::Negate, operand) => negate(expr, operand, scope),
        ExprKind::Binary(BinaryOperator::Logical(operator), left, right) => {
            logical(*operator, expr, left, right, scope)
        }
        ExprKind::Binary(BinaryOperator::Comparison(operator), left, right) => {
            comparison(*operator, expr, left, right, scope)
        }
        ExprKind::Binary(BinaryOperator::Arithmetic(operator), left, right) => {
            arithmetic(*operator, expr, left, right, scope)
        }
    }
}

/// Finds the payload value at a field path such as `state.reported.temp`.
fn lookup_field<'a>(path: &[String], scope: &Scope<'a>) -> Result<&'a Json, Undefined> {
    let full_path = || path.join(".");
    let mut object = scope.payload;
    let mut segments = path.iter().enumerate().peekable();
    while let Some((index, segment)) = segments.next() {
        let Some(value) = object.get(segment) else {
            return Err(Undefined::bare(format!(
                "{} is missing from the payload",
                full_path()
            )));
        };
        if segments.peek().is_none() {
            return Ok(value);
        }
        let Json::Object(inner) = value else {
            let parent: Vec<&str> = path.iter().take(index + 1).map(String::as_str).collect();
            return Err(Undefined::bare(format!(
                "{} is missing because {} is {}, not an object",
                full_path(),
                parent.join("."),
                render(&json_operand(value))
            )));
        };
        object = inner;
    }
    Err(Undefined::bare(
        "an empty field path selects nothing".to_owned(),
    ))
}

fn call_function<'a>(
    function: &'a Function,
    expr: &'a Expr,
    scope: &Scope<'a>,
) -> Result<Datum<'a>, Undefined> {
    match function {
        Function::Topic(None) => Ok(Datum::String(Cow::Borrowed(scope.topic))),
        Function::Topic(Some(level)) => topic_level(expr, level, scope),
        Function::Timestamp => Ok(Datum::Number(Number::Int(scope.timestamp_ms))),
        Function::ClientId => Err(Undefined::bare(CLIENT_ID_REASON.to_owned())),
    }
}

/// Evaluates `topic(n)`: the n-th level of the topic, counted from 1.
fn topic_level<'a>(
    expr: &Expr,
    level_expr: &'a Expr,
    scope: &Scope<'a>,
) -> Result<Datum<'a>, Undefined> {
    let text = scope.text(expr);
    let fail = |detail: String| {
        Undefined::in_context(format!("{text}: {detail}, so the result is Undefined"))
    };

    let datum =
        evaluate(level_expr, scope).map_err(|undefined| undefined.within(text, "the result"))?;
    let operand = datum.operand();
    let level = match to_number(level_expr, &operand, scope).map_err(fail)? {
        Number::Int(value) => usize::try_from(value).ok().filter(|level| *level >= 1),
        Number::Float(_) => None,
    };
    let Some(level) = level else {
        return Err(fail(fact(
            level_expr,
            &operand,
            scope,
            "is not a whole number of 1 or more",
        )));
    };

    let topic = scope.topic;
    match topic.split('/').nth(level - 1) {
        Some(segment) => Ok(Datum::String(Cow::Borrowed(segment))),
        None => Err(fail(format!(
            "topic {} has only {} levels",
            Json::from(topic),
            topic.split('/').count()
        ))),
    }
}

fn negate<'a>(
    expr: &Expr,
    operand_expr: &'a Expr,
    scope: &Scope<'a>,
) -> Result<Datum<'a>, Undefined> {
    let text = scope.text(expr);
    let datum =
        evaluate(operand_expr, scope).map_err(|undefined| undefined.within(text, "the result"))?;
    let number = to_number(operand_expr, &datum.operand(), scope).map_err(|detail| {
        Undefined::in_context(format!("{text}: {detail}, so the result is Undefined"))
    })?;
    let negated = match number {
        Number::Int(value) => value
            .checked_neg()
            .map_or_else(|| Number::Float(-int_to_f64(value)), Number::Int),
        Number::Float(value) => Number::Float(-value),
    };
    Ok(Datum::Number(negated))
}

/// Evaluates an operand of `AND`, `OR` or `NOT` as a truth value. Like AWS, it
/// accepts the strings "true" and "false" in any letter case.
fn truth<'a>(expr: &'a Expr, parent_text: &str, scope: &Scope<'a>) -> Result<bool, Undefined> {
    let datum = evaluate(expr, scope)
        .map_err(|undefined| undefined.within(parent_text, "the condition"))?;
    match datum.operand() {
        Operand::Bool(value) => Ok(value),
        Operand::String(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Operand::String(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(Undefined::in_context(format!(
            "{parent_text}: {}, so the condition is Undefined",
            fact(expr, &other, scope, "is not a Boolean")
        ))),
    }
}

/// Evaluates `AND` or `OR` with three-valued logic: false AND Undefined is
/// false, true OR Undefined is true, and other mixes with Undefined are Undefined.
fn logical<'a>(
    operator: LogicalOperator,
    expr: &Expr,
    left: &'a Expr,
    right: &'a Expr,
    scope: &Scope<'a>,
) -> Result<Datum<'a>, Undefined> {
    let text = scope.text(expr);
    let left = truth(left, text, scope);
    let right = truth(right, text, scope);
    let value = match operator {
        LogicalOperator::And => match (left, right) {
            (Ok(false), _) | (_, Ok(false)) => false,
            (Ok(true), Ok(true)) => true,
            (Err(undefined), _) | (_, Err(undefined)) => return Err(undefined),
        },
        LogicalOperator::Or => match (left, right) {
            (Ok(true), _) | (_, Ok(true)) => true,
            (Ok(false), Ok(false)) => false,
            (Err(undefined), _) | (_, Err(undefined)) => return Err(undefined),
        },
    };
    Ok(Datum::Bool(value))
}

fn comparison<'a>(
    operator: ComparisonOperator,
    expr: &Expr,
    left_expr: &'a Expr,
    right_expr: &'a Expr,
    scope: &Scope<'a>,
) -> Result<Datum<'a>, Undefined> {
    let text = scope.text(expr);
    let left =
        evaluate(left_expr, scope).map_err(|undefined| undefined.within(text, "the comparison"))?;
    let right = evaluate(right_expr, scope)
        .map_err(|undefined| undefined.within(text, "the comparison"))?;
    let left = Side {
        expr: left_expr,
        operand: left.operand(),
    };
    let right = Side {
        expr: right_expr,
        operand: right.operand(),
    };
    compare(operator, &left, &right, scope)
        .map(Datum::Bool)
        .map_err(|detail| {
            Undefined::in_context(format!("{text}: {detail}, so the comparison is Undefined"))
        })
}

/// An operand and the expression it came from, for reasons.
struct Side<'e, 'v> {
    expr: &'e Expr,
    operand: Operand<'v>,
}

/// Applies a comparison, or returns why it is Undefined.
fn compare(
    operator: ComparisonOperator,
    left: &Side,
    right: &Side,
    scope: &Scope<'_>,
) -> Result<bool, String> {
    let is_equality = matches!(
        operator,
        ComparisonOperator::Equal | ComparisonOperator::NotEqual
    );
    let equal = match (&left.operand, &right.operand) {
        (Operand::Null, Operand::Null) if is_equality => true,
        (Operand::Null, _) | (_, Operand::Null) => {
            return Err(
                "a comparison with NULL is Undefined unless both sides are NULL and the operator is = or <>"
                    .to_owned(),
            );
        }
        (Operand::Bool(a), Operand::Bool(b)) if is_equality => a == b,
        (Operand::String(a), Operand::String(b)) if is_equality => a == b,
        (Operand::Array(a), Operand::Array(b)) | (Operand::Object(a), Operand::Object(b))
            if is_equality =>
        {
            a == b
        }
        (Operand::Number(_) | Operand::String(_), Operand::Number(_) | Operand::String(_)) => {
            let ordering = numeric_ordering(left, right, scope)?;
            return Ok(operator_holds(operator, ordering));
        }
        (Operand::Bool(_), Operand::Bool(_)) => {
            return Err("Booleans have no order, so only = and <> compare them".to_owned());
        }
        (Operand::Array(_), Operand::Array(_)) | (Operand::Object(_), Operand::Object(_)) => {
            return Err(
                "arrays and objects have no order, so only = and <> compare them".to_owned(),
            );
        }
        (left, right) => {
            return Err(format!(
                "cannot compare {} with {}",
                describe(left),
                describe(right)
            ));
        }
    };
    Ok(equal == (operator == ComparisonOperator::Equal))
}

/// Orders two numbers or decimal strings numerically.
fn numeric_ordering(left: &Side, right: &Side, scope: &Scope<'_>) -> Result<Ordering, String> {
    let a = to_number(left.expr, &left.operand, scope)?;
    let b = to_number(right.expr, &right.operand, scope)?;
    let ordering = match (a, b) {
        (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
        _ => a.to_f64().partial_cmp(&b.to_f64()),
    };
    ordering.ok_or_else(|| "one of the numbers is not finite, so they have no order".to_owned())
}

fn operator_holds(operator: ComparisonOperator, ordering: Ordering) -> bool {
    match operator {
        ComparisonOperator::Equal => ordering.is_eq(),
        ComparisonOperator::NotEqual => ordering.is_ne(),
        ComparisonOperator::Less => ordering.is_lt(),
        ComparisonOperator::LessOrEqual => ordering.is_le(),
        ComparisonOperator::Greater => ordering.is_gt(),
        ComparisonOperator::GreaterOrEqual => ordering.is_ge(),
    }
}

fn arithmetic<'a>(
    operator: ArithmeticOperator,
    expr: &Expr,
    left_expr: &'a Expr,
    right_expr: &'a Expr,
    scope: &Scope<'a>,
) -> Result<Datum<'a>, Undefined> {
    let text = scope.text(expr);
    let fail = |detail: String| {
        Undefined::in_context(format!("{text}: {detail}, so the result is Undefined"))
    };

    let left =
        evaluate(left_expr, scope).map_err(|undefined| undefined.within(text, "the result"))?;
    let right =
        evaluate(right_expr, scope).map_err(|undefined| undefined.within(text, "the result"))?;
    let a = to_number(left_expr, &left.operand(), scope).map_err(fail)?;
    let b = to_number(right_expr, &right.operand(), scope).map_err(fail)?;
    let result = match (a, b) {
        (Number::Int(a), Number::Int(b)) => integer_arithmetic(operator, a, b),
        _ => float_arithmetic(operator, a.to_f64(), b.to_f64()),
    };
    result
        .map(Datum::Number)
        .map_err(|detail| fail(detail.to_owned()))
}

/// Applies an operator to two integers. The result stays an integer, so
/// division truncates toward zero, because the operator table of the AWS
/// reference gives an Int for Int / Int. On overflow the operation is repeated
/// in `f64`.
fn integer_arithmetic(
    operator: ArithmeticOperator,
    a: i64,
    b: i64,
) -> Result<Number, &'static str> {
    let exact = match operator {
        ArithmeticOperator::Add => a.checked_add(b),
        ArithmeticOperator::Subtract => a.checked_sub(b),
        ArithmeticOperator::Multiply => a.checked_mul(b),
        ArithmeticOperator::Divide | ArithmeticOperator::Remainder if b == 0 => {
            return Err("division by zero");
        }
        ArithmeticOperator::Divide => a.checked_div(b),
        ArithmeticOperator::Remainder => a.checked_rem(b),
    };
    match exact {
        Some(value) => Ok(Number::Int(value)),
        None => float_arithmetic(operator, int_to_f64(a), int_to_f64(b)),
    }
}

fn float_arithmetic(operator: ArithmeticOperator, a: f64, b: f64) -> Result<Number, &'static str> {
    let value = match operator {
        ArithmeticOperator::Add => a + b,
        ArithmeticOperator::Subtract => a - b,
        ArithmeticOperator::Multiply => a * b,
        ArithmeticOperator::Divide | ArithmeticOperator::Remainder if b == 0.0 => {
            return Err("division by zero");
        }
        ArithmeticOperator::Divide => a / b,
        ArithmeticOperator::Remainder => a % b,
    };
    if value.is_finite() {
        Ok(Number::Float(value))
    } else {
        Err("the result is out of range for a 64-bit float")
    }
}

/// Converts an operand for arithmetic or ordering. A string converts only when
/// it is a decimal literal (see [`parse_decimal`]).
fn to_number(expr: &Expr, operand: &Operand, scope: &Scope<'_>) -> Result<Number, String> {
    match operand {
        Operand::Number(number) => Ok(*number),
        Operand::String(text) => match parse_decimal(text) {
            Ok(number) => Ok(number),
            Err(DecimalError::NotDecimal) => {
                Err(fact(expr, operand, scope, "is not a decimal number"))
            }
            Err(DecimalError::OutOfRange) => Err(fact(
                expr,
                operand,
                scope,
                "is out of range for a 64-bit float",
            )),
        },
        _ => Err(fact(expr, operand, scope, "is not a number")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum DecimalError {
    NotDecimal,
    OutOfRange,
}

/// Parses a string that `AWS IoT` SQL converts to a number: an optional `-`,
/// digits, an optional `.` with digits, and an optional `e` or `E` with an
/// optional `-` and digits. So "36.20", "-4" and "5E-12" convert, while
/// "+4", " 4", ".5", "4.", "1e+3", "36.2°C" and "" do not. This follows the
/// pattern in the conversion table of the `AWS IoT` Core Developer Guide, page
/// "Data types". Whole numbers that fit in `i64` become integers.
fn parse_decimal(text: &str) -> Result<Number, DecimalError> {
    let bytes = text.as_bytes();
    let mut index = usize::from(bytes.first() == Some(&b'-'));
    let skip_digits = |from: usize| {
        from + bytes
            .iter()
            .skip(from)
            .take_while(|byte| byte.is_ascii_digit())
            .count()
    };

    let integer_end = skip_digits(index);
    if integer_end == index {
        return Err(DecimalError::NotDecimal);
    }
    index = integer_end;
    let mut is_integer = true;

    if bytes.get(index) == Some(&b'.') {
        let fraction_end = skip_digits(index + 1);
        if fraction_end == index + 1 {
            return Err(DecimalError::NotDecimal);
        }
        index = fraction_end;
        is_integer = false;
    }

    if matches!(bytes.get(index), Some(b'e' | b'E')) {
        let digits_start = index + 1 + usize::from(bytes.get(index + 1) == Some(&b'-'));
        let exponent_end = skip_digits(digits_start);
        if exponent_end == digits_start {
            return Err(DecimalError::NotDecimal);
        }
        index = exponent_end;
        is_integer = false;
    }

    if index != bytes.len() {
        return Err(DecimalError::NotDecimal);
    }
    if is_integer && let Ok(value) = text.parse::<i64>() {
        return Ok(Number::Int(value));
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(Number::Float(value)),
        _ => Err(DecimalError::OutOfRange),
    }
}

/// States a fact about an operand: `"abc" is not a number` for a literal, and
/// `temperature is "abc", which is not a number` for any other expression.
fn fact(expr: &Expr, operand: &Operand, scope: &Scope<'_>, predicate: &str) -> String {
    if matches!(expr.kind, ExprKind::Literal(_)) {
        format!("{} {predicate}", render(operand))
    } else {
        format!(
            "{} is {}, which {predicate}",
            scope.text(expr),
            render(operand)
        )
    }
}

/// Names an operand with its type, such as `the string "abc"`.
fn describe(operand: &Operand) -> String {
    let kind = match operand {
        Operand::Null => return "NULL".to_owned(),
        Operand::Bool(_) => "the Boolean",
        Operand::Number(_) => "the number",
        Operand::String(_) => "the string",
        Operand::Array(_) => "the array",
        Operand::Object(_) => "the object",
    };
    format!("{kind} {}", render(operand))
}

/// Renders an operand as JSON text, shortened to [`MAX_QUOTED_CHARS`].
fn render(operand: &Operand) -> String {
    let text = match operand {
        Operand::Null => "NULL".to_owned(),
        Operand::Bool(value) => value.to_string(),
        Operand::Number(Number::Int(value)) => value.to_string(),
        Operand::Number(Number::Float(value)) => format!("{value:?}"),
        Operand::String(value) => Json::from(*value).to_string(),
        Operand::Array(value) | Operand::Object(value) => value.to_string(),
    };
    shorten(text)
}

fn shorten(text: String) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text,
    }
}

/// Lists the values of the fields that a false condition read, such as
/// ` for temperature = 30, humidity is missing`, or returns "" if it read none.
fn field_summary(condition: &Expr, scope: &Scope<'_>) -> String {
    let mut paths: Vec<&[String]> = Vec::new();
    collect_fields(condition, &mut paths);
    if paths.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = paths
        .iter()
        .map(|path| {
            let name = path.join(".");
            match lookup_field(path, scope) {
                Ok(value) => format!("{name} = {}", render(&json_operand(value))),
                Err(_) => format!("{name} is missing"),
            }
        })
        .collect();
    format!(" for {}", parts.join(", "))
}

/// Appends the distinct field paths of an expression in source order.
fn collect_fields<'a>(expr: &'a Expr, paths: &mut Vec<&'a [String]>) {
    match &expr.kind {
        ExprKind::Field(path) => {
            if !paths.contains(&path.as_slice()) {
                paths.push(path);
            }
        }
        ExprKind::Literal(_)
        | ExprKind::Function(Function::Topic(None) | Function::Timestamp | Function::ClientId) => {}
        ExprKind::Function(Function::Topic(Some(operand))) | ExprKind::Unary(_, operand) => {
            collect_fields(operand, paths);
        }
        ExprKind::Binary(_, left, right) => {
            collect_fields(left, paths);
            collect_fields(right, paths);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_decimal_accepts() {
        let cases = [
            ("0", Number::Int(0)),
            ("-4", Number::Int(-4)),
            ("17", Number::Int(17)),
            ("36.20", Number::Float(36.2)),
            ("-1.2", Number::Float(-1.2)),
            ("1e3", Number::Float(1000.0)),
            ("5E-12", Number::Float(5e-12)),
            ("2.5e2", Number::Float(250.0)),
            (
                "9223372036854775808",
                Number::Float(9_223_372_036_854_775_808.0),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_decimal(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn parse_decimal_rejects() {
        let cases = [
            "", "-", "+4", " 4", "4 ", ".5", "4.", "1e", "1e+3", "1e-", "36.2°C", "abc", "0x10",
            "1_000", "--1", "NaN", "inf", "1.2.3", "١٢",
        ];
        for text in cases {
            assert_eq!(
                parse_decimal(text),
                Err(DecimalError::NotDecimal),
                "{text:?}"
            );
        }
        assert_eq!(parse_decimal("1e999"), Err(DecimalError::OutOfRange));
    }

    #[test]
    fn shorten_long_text() {
        assert_eq!(shorten("abc".to_owned()), "abc");
        let long = "é".repeat(MAX_QUOTED_CHARS + 5);
        let shortened = shorten(long);
        assert_eq!(shortened.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(shortened.ends_with('…'));
    }

    #[test]
    fn integer_arithmetic_overflow() {
        assert_eq!(
            integer_arithmetic(ArithmeticOperator::Add, i64::MAX, 1),
            Ok(Number::Float(9_223_372_036_854_775_808.0))
        );
        assert_eq!(
            integer_arithmetic(ArithmeticOperator::Divide, 7, 2),
            Ok(Number::Int(3))
        );
        assert_eq!(
            integer_arithmetic(ArithmeticOperator::Divide, -7, 2),
            Ok(Number::Int(-3))
        );
        assert_eq!(
            integer_arithmetic(ArithmeticOperator::Remainder, -7, 2),
            Ok(Number::Int(-1))
        );
        assert_eq!(
            integer_arithmetic(ArithmeticOperator::Remainder, 7, 0),
            Err("division by zero")
        );
        assert!(integer_arithmetic(ArithmeticOperator::Divide, i64::MIN, -1).is_ok());
        assert!(integer_arithmetic(ArithmeticOperator::Remainder, i64::MIN, -1).is_ok());
    }

    #[test]
    fn float_arithmetic_limits() {
        assert_eq!(
            float_arithmetic(ArithmeticOperator::Divide, 1.0, 0.0),
            Err("division by zero")
        );
        assert_eq!(
            float_arithmetic(ArithmeticOperator::Remainder, 1.0, -0.0),
            Err("division by zero")
        );
        assert!(float_arithmetic(ArithmeticOperator::Multiply, 1e300, 1e300).is_err());
        assert_eq!(
            float_arithmetic(ArithmeticOperator::Remainder, 7.5, 2.0),
            Ok(Number::Float(1.5))
        );
    }
}
