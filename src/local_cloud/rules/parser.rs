//! Parses rule SQL text into a syntax tree: the SELECT list, the FROM topic
//! filter and the optional WHERE condition.
//!
//! Operator precedence, from loosest to tightest: `OR`, `AND`, `NOT`, the
//! comparisons, `+` and `-`, then `*`, `/` and `%`, then unary minus. Binary
//! operators of equal precedence group from the left.

use super::MAX_NESTING_DEPTH;
use super::error::RuleError;
use super::lexer::{Keyword, NumberLiteral, Token, TokenKind, char_position, tokenize};
use super::topic::validate_filter;

/// A parsed statement.
#[derive(Debug, Clone)]
pub(super) struct Statement {
    pub select: Vec<SelectItem>,
    /// The FROM topic filter without its quotes.
    pub topic_filter: String,
    pub condition: Option<Expr>,
}

#[derive(Debug, Clone)]
pub(super) enum SelectItem {
    /// `*`: every top-level key of the payload.
    Wildcard,
    /// An expression and the key it gets in the output object.
    Expression { expr: Expr, key: String },
}

/// An expression node and the byte span of its text in the SQL.
#[derive(Debug, Clone)]
pub(super) struct Expr {
    pub kind: ExprKind,
    pub start: usize,
    pub end: usize,
    /// Height of the subtree: 1 for a leaf. Bounded by [`MAX_NESTING_DEPTH`], so
    /// that evaluating and dropping the tree cannot overflow the stack.
    depth: usize,
}

#[derive(Debug, Clone)]
pub(super) enum ExprKind {
    Literal(Literal),
    /// A path of field names from the payload root, such as `state.reported.temp`.
    Field(Vec<String>),
    Function(Function),
    Unary(UnaryOperator, Box<Expr>),
    Binary(BinaryOperator, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

#[derive(Debug, Clone)]
pub(super) enum Function {
    /// `topic()` with no argument, or `topic(n)` with a 1-based level number.
    Topic(Option<Box<Expr>>),
    Timestamp,
    ClientId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnaryOperator {
    Not,
    Negate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinaryOperator {
    Logical(LogicalOperator),
    Comparison(ComparisonOperator),
    Arithmetic(ArithmeticOperator),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LogicalOperator {
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ComparisonOperator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArithmeticOperator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
}

impl Expr {
    fn leaf(kind: ExprKind, token: &Token) -> Self {
        Self {
            kind,
            start: token.start,
            end: token.end,
            depth: 1,
        }
    }
}

/// Parses a whole statement. The caller has already checked the length limit.
pub(super) fn parse_statement(sql: &str) -> Result<Statement, RuleError> {
    let tokens = tokenize(sql)?;
    let mut parser = Parser {
        sql,
        tokens,
        index: 0,
        nesting: 0,
    };
    parser.statement()
}

struct Parser<'s> {
    sql: &'s str,
    /// Tokens of the whole text. The last one is always `TokenKind::End`.
    tokens: Vec<Token>,
    index: usize,
    /// Current depth of nested parentheses and prefix operators.
    nesting: usize,
}

/// Stand-in returned by `peek` if the token list were ever empty.
static END_TOKEN: Token = Token {
    kind: TokenKind::End,
    start: 0,
    end: 0,
};

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.tokens
            .get(self.index)
            .or_else(|| self.tokens.last())
            .unwrap_or(&END_TOKEN)
    }

    fn peek_second(&self) -> &TokenKind {
        self.tokens
            .get(self.index + 1)
            .map_or(&TokenKind::End, |token| &token.kind)
    }

    /// Returns the current token and moves past it, but never past the end.
    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::End {
            self.index += 1;
        }
        token
    }

    fn eat_keyword(&mut self, keyword: Keyword) -> bool {
        if self.peek().kind == TokenKind::Keyword(keyword) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn position_of(&self, token: &Token) -> usize {
        char_position(self.sql, token.start)
    }

    fn unexpected(&self, expected: &'static str) -> RuleError {
        let token = self.peek();
        RuleError::UnexpectedToken {
            position: self.position_of(token),
            expected,
            found: describe_token(self.sql, token),
        }
    }

    /// Enters one level of parentheses or prefix operators.
    fn enter(&mut self) -> Result<(), RuleError> {
        if self.nesting >= MAX_NESTING_DEPTH {
            return Err(RuleError::TooDeep {
                position: self.position_of(self.peek()),
            });
        }
        self.nesting += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    /// Returns the depth of a new node over `children`, or rejects the node if
    /// the tree would get deeper than [`MAX_NESTING_DEPTH`].
    fn depth_over(&self, start: usize, children: &[&Expr]) -> Result<usize, RuleError> {
        let depth = 1 + children.iter().map(|child| child.depth).max().unwrap_or(0);
        if depth > MAX_NESTING_DEPTH {
            return Err(RuleError::TooDeep {
                position: char_position(self.sql, start),
            });
        }
        Ok(depth)
    }

    fn binary(&self, operator: BinaryOperator, left: Expr, right: Expr) -> Result<Expr, RuleError> {
        let (start, end) = (left.start, right.end);
        let depth = self.depth_over(start, &[&left, &right])?;
        Ok(Expr {
            kind: ExprKind::Binary(operator, Box::new(left), Box::new(right)),
            start,
            end,
            depth,
        })
    }

    fn unary(
        &self,
        operator: UnaryOperator,
        start: usize,
        operand: Expr,
    ) -> Result<Expr, RuleError> {
        let end = operand.end;
        let depth = self.depth_over(start, &[&operand])?;
        Ok(Expr {
            kind: ExprKind::Unary(operator, Box::new(operand)),
            start,
            end,
            depth,
        })
    }

    fn statement(&mut self) -> Result<Statement, RuleError> {
        if !self.eat_keyword(Keyword::Select) {
            return Err(self.unexpected("SELECT at the start of the statement"));
        }
        let select = self.select_list()?;

        let filter_token = self.peek().clone();
        let TokenKind::String(topic_filter) = filter_token.kind else {
            return Err(
                self.unexpected("a quoted topic filter after FROM, such as 'sensors/+/data'")
            );
        };
        self.advance();
        if let Err(detail) = validate_filter(&topic_filter) {
            return Err(RuleError::InvalidTopicFilter {
                position: char_position(self.sql, filter_token.start),
                filter: topic_filter,
                detail,
            });
        }

        let condition = if self.eat_keyword(Keyword::Where) {
            Some(self.expression()?)
        } else {
            None
        };

        let rest = self.peek();
        if rest.kind != TokenKind::End {
            return Err(RuleError::TrailingInput {
                position: self.position_of(rest),
                found: describe_token(self.sql, rest),
            });
        }
        Ok(Statement {
            select,
            topic_filter,
            condition,
        })
    }

    /// Parses the SELECT items up to and including the FROM keyword.
    fn select_list(&mut self) -> Result<Vec<SelectItem>, RuleError> {
        let mut items = Vec::new();
        loop {
            let item_number = items.len() + 1;
            let (item, can_take_alias) = self.select_item(item_number)?;
            items.push(item);
            if self.peek().kind == TokenKind::Comma {
                self.advance();
            } else if self.eat_keyword(Keyword::From) {
                return Ok(items);
            } else if can_take_alias {
                return Err(self.unexpected("`,`, AS or FROM after a SELECT item"));
            } else {
                return Err(self.unexpected("`,` or FROM after a SELECT item"));
            }
        }
    }

    /// Parses one SELECT item and returns it with whether an AS could still follow.
    fn select_item(&mut self, item_number: usize) -> Result<(SelectItem, bool), RuleError> {
        match self.peek().kind {
            TokenKind::Star => {
                self.advance();
                return Ok((SelectItem::Wildcard, false));
            }
            TokenKind::Keyword(Keyword::From) | TokenKind::Comma | TokenKind::End => {
                return Err(self.unexpected("a SELECT item: `*`, a field name or an expression"));
            }
            _ => {}
        }

        let expr = self.expression()?;
        if self.eat_keyword(Keyword::As) {
            let TokenKind::Identifier(key) = self.peek().kind.clone() else {
                return Err(self.unexpected("an alias name after AS"));
            };
            self.advance();
            return Ok((SelectItem::Expression { expr, key }, false));
        }

        let key = match &expr.kind {
            ExprKind::Field(path) => path.last().cloned().unwrap_or_default(),
            _ => format!("_{item_number}"),
        };
        Ok((SelectItem::Expression { expr, key }, true))
    }

    fn expression(&mut self) -> Result<Expr, RuleError> {
        self.or_expression()
    }

    fn or_expression(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.and_expression()?;
        while self.eat_keyword(Keyword::Or) {
            let right = self.and_expression()?;
            left = self.binary(BinaryOperator::Logical(LogicalOperator::Or), left, right)?;
        }
        Ok(left)
    }

    fn and_expression(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.not_expression()?;
        while self.eat_keyword(Keyword::And) {
            let right = self.not_expression()?;
            left = self.binary(BinaryOperator::Logical(LogicalOperator::And), left, right)?;
        }
        Ok(left)
    }

    fn not_expression(&mut self) -> Result<Expr, RuleError> {
        if self.peek().kind != TokenKind::Keyword(Keyword::Not) {
            return self.comparison();
        }
        let start = self.advance().start;
        self.enter()?;
        let operand = self.not_expression();
        self.leave();
        self.unary(UnaryOperator::Not, start, operand?)
    }

    fn comparison(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.additive()?;
        loop {
            let operator = match self.peek().kind {
                TokenKind::Equal => ComparisonOperator::Equal,
                TokenKind::NotEqual => ComparisonOperator::NotEqual,
                TokenKind::Less => ComparisonOperator::Less,
                TokenKind::LessOrEqual => ComparisonOperator::LessOrEqual,
                TokenKind::Greater => ComparisonOperator::Greater,
                TokenKind::GreaterOrEqual => ComparisonOperator::GreaterOrEqual,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.additive()?;
            left = self.binary(BinaryOperator::Comparison(operator), left, right)?;
        }
    }

    fn additive(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.multiplicative()?;
        loop {
            let operator = match self.peek().kind {
                TokenKind::Plus => ArithmeticOperator::Add,
                TokenKind::Minus => ArithmeticOperator::Subtract,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.multiplicative()?;
            left = self.binary(BinaryOperator::Arithmetic(operator), left, right)?;
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.negation()?;
        loop {
            let operator = match self.peek().kind {
                TokenKind::Star => ArithmeticOperator::Multiply,
                TokenKind::Slash => ArithmeticOperator::Divide,
                TokenKind::Percent => ArithmeticOperator::Remainder,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.negation()?;
            left = self.binary(BinaryOperator::Arithmetic(operator), left, right)?;
        }
    }

    fn negation(&mut self) -> Result<Expr, RuleError> {
        if self.peek().kind != TokenKind::Minus {
            return self.primary();
        }
        let start = self.advance().start;
        self.enter()?;
        let operand = self.negation();
        self.leave();
        self.unary(UnaryOperator::Negate, start, operand?)
    }

    fn primary(&mut self) -> Result<Expr, RuleError> {
        let token = self.peek().clone();
        let literal = match &token.kind {
            TokenKind::Number(NumberLiteral::Int(value)) => Literal::Int(*value),
            TokenKind::Number(NumberLiteral::Float(value)) => Literal::Float(*value),
            TokenKind::String(text) => Literal::String(text.clone()),
            TokenKind::Keyword(Keyword::True) => Literal::Bool(true),
            TokenKind::Keyword(Keyword::False) => Literal::Bool(false),
            TokenKind::Keyword(Keyword::Null) => Literal::Null,
            TokenKind::LeftParen => return self.parenthesized(),
            TokenKind::Identifier(name) if *self.peek_second() == TokenKind::LeftParen => {
                return self.function_call(name.clone());
            }
            TokenKind::Identifier(_) => return self.field_path(),
            _ => {
                return Err(self
                    .unexpected("an expression: a field name, a literal, a function call or `(`"));
            }
        };
        self.advance();
        Ok(Expr::leaf(ExprKind::Literal(literal), &token))
    }

    fn parenthesized(&mut self) -> Result<Expr, RuleError> {
        let open = self.advance();
        self.enter()?;
        let inner = self.expression();
        self.leave();
        let mut inner = inner?;
        if self.peek().kind != TokenKind::RightParen {
            return Err(self.unexpected("`)` to close the parenthesis"));
        }
        // The span covers the parentheses so that reasons quote what the user wrote.
        inner.start = open.start;
        inner.end = self.advance().end;
        Ok(inner)
    }

    fn field_path(&mut self) -> Result<Expr, RuleError> {
        let first = self.advance();
        let TokenKind::Identifier(name) = first.kind else {
            return Err(self.unexpected("a field name"));
        };
        let mut path = vec![name];
        let mut end = first.end;
        while self.peek().kind == TokenKind::Dot {
            self.advance();
            let segment = self.peek().clone();
            let TokenKind::Identifier(name) = segment.kind else {
                return Err(self.unexpected("a field name after `.`"));
            };
            self.advance();
            path.push(name);
            end = segment.end;
        }
        Ok(Expr {
            kind: ExprKind::Field(path),
            start: first.start,
            end,
            depth: 1,
        })
    }

    fn function_call(&mut self, name: String) -> Result<Expr, RuleError> {
        let name_token = self.advance();
        self.advance(); // `(`, checked by the caller
        self.enter()?;
        let arguments = self.arguments();
        self.leave();
        let (mut arguments, end) = arguments?;

        let position = char_position(self.sql, name_token.start);
        let wrong_count =
            |name: &'static str, expected: &'static str| RuleError::WrongArgumentCount {
                position,
                name,
                expected,
                found: arguments.len(),
            };
        let function = match name.to_ascii_lowercase().as_str() {
            "topic" if arguments.len() <= 1 => Function::Topic(arguments.pop().map(Box::new)),
            "topic" => return Err(wrong_count("topic", "no argument or one level number")),
            "timestamp" if arguments.is_empty() => Function::Timestamp,
            "timestamp" => return Err(wrong_count("timestamp", "no arguments")),
            "clientid" if arguments.is_empty() => Function::ClientId,
            "clientid" => return Err(wrong_count("clientid", "no arguments")),
            _ => return Err(RuleError::UnknownFunction { position, name }),
        };

        let depth = match &function {
            Function::Topic(Some(level)) => self.depth_over(name_token.start, &[level.as_ref()])?,
            _ => 1,
        };
        Ok(Expr {
            kind: ExprKind::Function(function),
            start: name_token.start,
            end,
            depth,
        })
    }

    /// Parses call arguments after `(` up to and including `)`, and returns them
    /// with the byte offset after the `)`.
    fn arguments(&mut self) -> Result<(Vec<Expr>, usize), RuleError> {
        let mut arguments = Vec::new();
        if self.peek().kind != TokenKind::RightParen {
            loop {
                arguments.push(self.expression()?);
                if self.peek().kind != TokenKind::Comma {
                    break;
                }
                self.advance();
            }
        }
        if self.peek().kind != TokenKind::RightParen {
            return Err(self.unexpected("`,` or `)` in the function arguments"));
        }
        let close = self.advance();
        Ok((arguments, close.end))
    }
}

/// Describes a token for an error message, such as "keyword WHERE" or "end of input".
fn describe_token(sql: &str, token: &Token) -> String {
    const MAX_SHOWN_CHARS: usize = 40;
    let text = sql.get(token.start..token.end).unwrap_or_default();
    let excerpt: String = text.chars().take(MAX_SHOWN_CHARS).collect();
    let ellipsis = if excerpt.len() < text.len() {
        "…"
    } else {
        ""
    };
    match &token.kind {
        TokenKind::End => "end of input".to_owned(),
        TokenKind::Keyword(_) => format!("keyword {}", excerpt.to_ascii_uppercase()),
        TokenKind::Identifier(_) => format!("name `{excerpt}`"),
        TokenKind::Number(_) => format!("number {excerpt}"),
        TokenKind::String(_) => format!("string {excerpt}{ellipsis}"),
        _ => format!("`{excerpt}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Statement {
        parse_statement(sql).unwrap()
    }

    fn parse_error(sql: &str) -> String {
        parse_statement(sql).unwrap_err().to_string()
    }

    fn keys(statement: &Statement) -> Vec<&str> {
        statement
            .select
            .iter()
            .map(|item| match item {
                SelectItem::Wildcard => "*",
                SelectItem::Expression { key, .. } => key.as_str(),
            })
            .collect()
    }

    /// Renders a tree with explicit parentheses to check precedence.
    fn render(expr: &Expr) -> String {
        match &expr.kind {
            ExprKind::Literal(Literal::Int(value)) => value.to_string(),
            ExprKind::Literal(other) => format!("{other:?}"),
            ExprKind::Field(path) => path.join("."),
            ExprKind::Function(Function::Topic(Some(level))) => format!("topic({})", render(level)),
            ExprKind::Function(function) => format!("{function:?}"),
            ExprKind::Unary(UnaryOperator::Not, operand) => format!("(NOT {})", render(operand)),
            ExprKind::Unary(UnaryOperator::Negate, operand) => format!("(-{})", render(operand)),
            ExprKind::Binary(operator, left, right) => {
                format!("({} {} {})", render(left), symbol(*operator), render(right))
            }
        }
    }

    fn symbol(operator: BinaryOperator) -> &'static str {
        match operator {
            BinaryOperator::Logical(LogicalOperator::And) => "AND",
            BinaryOperator::Logical(LogicalOperator::Or) => "OR",
            BinaryOperator::Comparison(ComparisonOperator::Equal) => "=",
            BinaryOperator::Comparison(ComparisonOperator::NotEqual) => "<>",
            BinaryOperator::Comparison(ComparisonOperator::Less) => "<",
            BinaryOperator::Comparison(ComparisonOperator::LessOrEqual) => "<=",
            BinaryOperator::Comparison(ComparisonOperator::Greater) => ">",
            BinaryOperator::Comparison(ComparisonOperator::GreaterOrEqual) => ">=",
            BinaryOperator::Arithmetic(ArithmeticOperator::Add) => "+",
            BinaryOperator::Arithmetic(ArithmeticOperator::Subtract) => "-",
            BinaryOperator::Arithmetic(ArithmeticOperator::Multiply) => "*",
            BinaryOperator::Arithmetic(ArithmeticOperator::Divide) => "/",
            BinaryOperator::Arithmetic(ArithmeticOperator::Remainder) => "%",
        }
    }

    fn condition(sql: &str) -> String {
        render(parse(sql).condition.as_ref().unwrap())
    }

    #[test]
    fn statement_default_rule() {
        let statement = parse(
            "SELECT temperature, deviceId, seq, timestamp FROM 'Emulators/Weather/SensorReadings'",
        );
        assert_eq!(
            keys(&statement),
            ["temperature", "deviceId", "seq", "timestamp"]
        );
        assert_eq!(statement.topic_filter, "Emulators/Weather/SensorReadings");
        assert!(statement.condition.is_none());
    }

    #[test]
    fn statement_select_keys() {
        let cases = [
            ("SELECT * FROM 'a'", vec!["*"]),
            ("SELECT *, topic() AS t FROM 'a'", vec!["*", "t"]),
            ("SELECT state.reported.temp FROM 'a'", vec!["temp"]),
            (
                "SELECT a, b + 1, topic(2), c AS d FROM 'a'",
                vec!["a", "_2", "_3", "d"],
            ),
            ("SELECT (a) FROM 'a'", vec!["a"]),
            ("SELECT 1 AS one, * FROM 'a'", vec!["one", "*"]),
        ];
        for (sql, expected) in cases {
            assert_eq!(keys(&parse(sql)), expected, "{sql}");
        }
    }

    #[test]
    fn statement_keywords_case_insensitive() {
        let statement =
            parse("select Temp as t from \"a/+\" where NOT temp > 1 aNd TRUE or null = NULL");
        assert_eq!(keys(&statement), ["t"]);
        assert_eq!(statement.topic_filter, "a/+");
        assert!(statement.condition.is_some());
    }

    #[test]
    fn statement_precedence() {
        let cases = [
            ("a OR b AND c", "(a OR (b AND c))"),
            ("NOT a = 1 AND b", "((NOT (a = 1)) AND b)"),
            ("1 + 2 * 3 > 4 - 5 % 6", "((1 + (2 * 3)) > (4 - (5 % 6)))"),
            ("-a * 2", "((-a) * 2)"),
            ("(1 + 2) * 3", "((1 + 2) * 3)"),
            ("1 - 2 - 3", "((1 - 2) - 3)"),
            ("a <> 1 OR a != 2", "((a <> 1) OR (a <> 2))"),
            (
                "a <= 1 AND a >= 0 AND a < 2",
                "(((a <= 1) AND (a >= 0)) AND (a < 2))",
            ),
            ("topic(1 + 1) = 'x'", "(topic((1 + 1)) = String(\"x\"))"),
            ("NOT NOT a", "(NOT (NOT a))"),
        ];
        for (text, expected) in cases {
            let sql = format!("SELECT * FROM 'a' WHERE {text}");
            assert_eq!(condition(&sql), expected, "{text}");
        }
    }

    #[test]
    fn statement_spans_cover_source() {
        let sql = "SELECT * FROM 'a' WHERE (temperature - 1) * 2 > 35";
        let statement = parse(sql);
        let condition = statement.condition.unwrap();
        assert_eq!(
            &sql[condition.start..condition.end],
            "(temperature - 1) * 2 > 35"
        );
        let ExprKind::Binary(_, left, _) = &condition.kind else {
            panic!("expected a comparison");
        };
        assert_eq!(&sql[left.start..left.end], "(temperature - 1) * 2");
    }

    #[test]
    fn statement_errors_clauses() {
        let cases = [
            ("", &["expected SELECT", "position 1", "end of input"][..]),
            (
                "SELECT temperature",
                &["expected `,`, AS or FROM", "position 19", "end of input"],
            ),
            (
                "SELECT temperature 'a'",
                &["expected `,`, AS or FROM", "string 'a'"],
            ),
            (
                "SELECT * WHERE a > 1",
                &["expected `,` or FROM", "position 10", "keyword WHERE"],
            ),
            (
                "SELECT FROM 'a'",
                &["expected a SELECT item", "position 8", "keyword FROM"],
            ),
            (
                "SELECT a, FROM 'a'",
                &["expected a SELECT item", "keyword FROM"],
            ),
            (
                "SELECT a FROM",
                &["quoted topic filter", "position 14", "end of input"],
            ),
            ("SELECT a FROM a/b", &["quoted topic filter", "name `a`"]),
        ];
        for (sql, fragments) in cases {
            let message = parse_error(sql);
            for fragment in fragments {
                assert!(
                    message.contains(fragment),
                    "{sql:?}: {message:?} lacks {fragment:?}"
                );
            }
        }
    }

    #[test]
    fn statement_errors_expressions() {
        let cases = [
            (
                "SELECT a FROM 'a' WHERE",
                &["expected an expression", "end of input"][..],
            ),
            (
                "SELECT a FROM 'a' WHERE a >",
                &["expected an expression", "position 28"],
            ),
            ("SELECT a FROM 'a' WHERE (a > 1", &["`)`", "end of input"]),
            (
                "SELECT a FROM 'a' WHERE a > 1 garbage",
                &["unexpected name `garbage`", "position 31", "after the end"],
            ),
            (
                "SELECT a FROM 'a' b",
                &["unexpected name `b`", "position 19"],
            ),
            (
                "SELECT a FROM 'a' WHERE a > 1)",
                &["unexpected `)`", "position 30"],
            ),
            (
                "SELECT a AS FROM 'a'",
                &["alias name after AS", "keyword FROM"],
            ),
            (
                "SELECT a. FROM 'a'",
                &["field name after `.`", "keyword FROM"],
            ),
            (
                "SELECT a FROM 'a' WHERE upper(a) = 'X'",
                &[
                    "unknown function `upper`",
                    "position 25",
                    "topic(), topic(n), timestamp(), clientid()",
                ],
            ),
            (
                "SELECT timestamp(1) FROM 'a'",
                &["timestamp() at position 8", "no arguments", "given 1"],
            ),
            (
                "SELECT topic(1, 2) FROM 'a'",
                &["topic()", "one level number", "given 2"],
            ),
            ("SELECT clientid(x) FROM 'a'", &["clientid()", "given 1"]),
            ("SELECT topic(1 FROM 'a'", &["`,` or `)`", "keyword FROM"]),
            (
                "SELECT a FROM 'a/#/b'",
                &[
                    "invalid topic filter \"a/#/b\"",
                    "position 15",
                    "last level",
                ],
            ),
            ("SELECT a FROM ''", &["invalid topic filter", "empty"]),
            ("SELECT a FROM 'a+'", &["whole level"]),
            (
                "SELECT 'abc FROM 'a'",
                &["unterminated string literal starting at position 20"],
            ),
            (
                "SELECT a FROM 'a' WHERE b = 'abc",
                &["unterminated string literal", "position 29"],
            ),
            (
                "SELECT select FROM 'a'",
                &["expected an expression", "keyword SELECT"],
            ),
        ];
        for (sql, fragments) in cases {
            let message = parse_error(sql);
            for fragment in fragments {
                assert!(
                    message.contains(fragment),
                    "{sql:?}: {message:?} lacks {fragment:?}"
                );
            }
        }
    }

    #[test]
    fn nesting_parentheses_limit() {
        let at_limit = format!(
            "SELECT a FROM 't' WHERE {}a{} > 1",
            "(".repeat(64),
            ")".repeat(64)
        );
        assert!(parse_statement(&at_limit).is_ok());

        let too_deep = format!(
            "SELECT a FROM 't' WHERE {}a{} > 1",
            "(".repeat(65),
            ")".repeat(65)
        );
        let error = parse_statement(&too_deep).unwrap_err();
        assert!(matches!(error, RuleError::TooDeep { .. }), "{error:?}");
        assert!(error.to_string().contains("nested deeper than 64 levels"));
    }

    #[test]
    fn nesting_prefix_operators_limit() {
        let nots = format!("SELECT a FROM 't' WHERE {}a", "NOT ".repeat(100));
        assert!(matches!(
            parse_statement(&nots),
            Err(RuleError::TooDeep { .. })
        ));

        let minuses = format!("SELECT {}1 FROM 't'", "- ".repeat(100));
        assert!(matches!(
            parse_statement(&minuses),
            Err(RuleError::TooDeep { .. })
        ));
    }

    #[test]
    fn nesting_operator_chain_limit() {
        let short_chain = format!("SELECT a FROM 't' WHERE a = 1{}", " OR a = 1".repeat(60));
        assert!(parse_statement(&short_chain).is_ok());

        let long_chain = format!("SELECT 1{} FROM 't'", " + 1".repeat(1000));
        let error = parse_statement(&long_chain).unwrap_err();
        assert!(matches!(error, RuleError::TooDeep { .. }), "{error:?}");
    }

    #[test]
    fn nesting_in_function_arguments() {
        let sql = format!("SELECT {}1{} FROM 't'", "topic(".repeat(70), ")".repeat(70));
        assert!(matches!(
            parse_statement(&sql),
            Err(RuleError::TooDeep { .. })
        ));
    }
}
