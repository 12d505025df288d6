//! Splits rule SQL text into tokens with their byte spans.

use super::RuleError;

/// Reserved words of the subset. They match case-insensitively and cannot be
/// used as field names or aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    Select,
    From,
    Where,
    As,
    And,
    Or,
    Not,
    True,
    False,
    Null,
}

impl Keyword {
    fn from_word(word: &str) -> Option<Self> {
        let keyword = match word.to_ascii_uppercase().as_str() {
            "SELECT" => Self::Select,
            "FROM" => Self::From,
            "WHERE" => Self::Where,
            "AS" => Self::As,
            "AND" => Self::And,
            "OR" => Self::Or,
            "NOT" => Self::Not,
            "TRUE" => Self::True,
            "FALSE" => Self::False,
            "NULL" => Self::Null,
            _ => return None,
        };
        Some(keyword)
    }
}

/// Value of a number literal. Integers that fit in `i64` stay integers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum NumberLiteral {
    Int(i64),
    Float(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    Keyword(Keyword),
    Identifier(String),
    Number(NumberLiteral),
    /// String literal with its quotes removed and doubled quotes unescaped.
    String(String),
    Star,
    Comma,
    Dot,
    LeftParen,
    RightParen,
    Plus,
    Minus,
    Slash,
    Percent,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    End,
}

/// A token and its byte span in the SQL text.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

/// Converts a byte offset into the 1-based character position used in errors.
pub(super) fn char_position(sql: &str, byte_offset: usize) -> usize {
    sql.get(..byte_offset)
        .map_or(0, |prefix| prefix.chars().count())
        + 1
}

/// Splits `sql` into tokens. The last token is always [`TokenKind::End`].
pub(super) fn tokenize(sql: &str) -> Result<Vec<Token>, RuleError> {
    let mut lexer = Lexer { sql, offset: 0 };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let is_end = token.kind == TokenKind::End;
        tokens.push(token);
        if is_end {
            return Ok(tokens);
        }
    }
}

struct Lexer<'s> {
    sql: &'s str,
    /// Byte offset of the next character to read.
    offset: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.sql.get(self.offset..)?.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let next = self.peek()?;
        self.offset += next.len_utf8();
        Some(next)
    }

    /// Consumes characters while `accept` holds.
    fn bump_while(&mut self, accept: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&accept) {
            self.bump();
        }
    }

    fn text_from(&self, start: usize) -> &str {
        self.sql.get(start..self.offset).unwrap_or_default()
    }

    fn next_token(&mut self) -> Result<Token, RuleError> {
        self.bump_while(char::is_whitespace);
        let start = self.offset;
        let Some(first) = self.bump() else {
            return Ok(Token {
                kind: TokenKind::End,
                start,
                end: start,
            });
        };

        let kind = match first {
            '*' => TokenKind::Star,
            ',' => TokenKind::Comma,
            '.' => TokenKind::Dot,
            '(' => TokenKind::LeftParen,
            ')' => TokenKind::RightParen,
            '+' => TokenKind::Plus,
            '-' => TokenKind::Minus,
            '/' => TokenKind::Slash,
            '%' => TokenKind::Percent,
            '=' => TokenKind::Equal,
            '<' => self.finish_less(),
            '>' => self.finish_greater(),
            '!' if self.peek() == Some('=') => {
                self.bump();
                TokenKind::NotEqual
            }
            '\'' | '"' => self.finish_string(start, first)?,
            '0'..='9' => self.finish_number(start)?,
            _ if first == '_' || first.is_alphabetic() => self.finish_word(start),
            _ => {
                return Err(RuleError::UnexpectedCharacter {
                    position: char_position(self.sql, start),
                    found: first,
                });
            }
        };
        Ok(Token {
            kind,
            start,
            end: self.offset,
        })
    }

    fn finish_less(&mut self) -> TokenKind {
        match self.peek() {
            Some('=') => {
                self.bump();
                TokenKind::LessOrEqual
            }
            Some('>') => {
                self.bump();
                TokenKind::NotEqual
            }
            _ => TokenKind::Less,
        }
    }

    fn finish_greater(&mut self) -> TokenKind {
        if self.peek() == Some('=') {
            self.bump();
            TokenKind::GreaterOrEqual
        } else {
            TokenKind::Greater
        }
    }

    /// Reads the rest of a string literal after its opening `quote`. A doubled
    /// quote inside the literal stands for one quote character.
    fn finish_string(&mut self, start: usize, quote: char) -> Result<TokenKind, RuleError> {
        let mut text = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(RuleError::UnterminatedString {
                        position: char_position(self.sql, start),
                        quote,
                    });
                }
                Some(next) if next == quote => {
                    if self.peek() == Some(quote) {
                        self.bump();
                        text.push(quote);
                    } else {
                        return Ok(TokenKind::String(text));
                    }
                }
                Some(next) => text.push(next),
            }
        }
    }

    /// Reads the rest of a number literal: digits, an optional fraction and an
    /// optional exponent with an optional sign.
    fn finish_number(&mut self, start: usize) -> Result<TokenKind, RuleError> {
        self.bump_while(|next| next.is_ascii_digit());
        let mut is_integer = true;

        if self.peek() == Some('.') {
            is_integer = false;
            self.bump();
            if !self.peek().is_some_and(|next| next.is_ascii_digit()) {
                return Err(self.invalid_number(start, "a digit must follow the decimal point"));
            }
            self.bump_while(|next| next.is_ascii_digit());
        }

        if matches!(self.peek(), Some('e' | 'E')) {
            is_integer = false;
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if !self.peek().is_some_and(|next| next.is_ascii_digit()) {
                return Err(self.invalid_number(start, "the exponent needs at least one digit"));
            }
            self.bump_while(|next| next.is_ascii_digit());
        }

        let text = self.text_from(start);
        if is_integer && let Ok(value) = text.parse::<i64>() {
            return Ok(TokenKind::Number(NumberLiteral::Int(value)));
        }
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(TokenKind::Number(NumberLiteral::Float(value))),
            _ => Err(self.invalid_number(start, "the value is out of range for a 64-bit float")),
        }
    }

    fn invalid_number(&self, start: usize, detail: &'static str) -> RuleError {
        RuleError::InvalidNumber {
            position: char_position(self.sql, start),
            text: self.text_from(start).to_owned(),
            detail,
        }
    }

    fn finish_word(&mut self, start: usize) -> TokenKind {
        self.bump_while(|next| next == '_' || next.is_alphanumeric());
        let word = self.text_from(start);
        Keyword::from_word(word).map_or_else(
            || TokenKind::Identifier(word.to_owned()),
            TokenKind::Keyword,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<TokenKind> {
        tokenize(sql)
            .unwrap()
            .into_iter()
            .map(|token| token.kind)
            .collect()
    }

    #[test]
    fn tokenize_operators() {
        let expected = vec![
            TokenKind::Equal,
            TokenKind::NotEqual,
            TokenKind::NotEqual,
            TokenKind::Less,
            TokenKind::LessOrEqual,
            TokenKind::Greater,
            TokenKind::GreaterOrEqual,
            TokenKind::Plus,
            TokenKind::Minus,
            TokenKind::Star,
            TokenKind::Slash,
            TokenKind::Percent,
            TokenKind::LeftParen,
            TokenKind::RightParen,
            TokenKind::Comma,
            TokenKind::Dot,
            TokenKind::End,
        ];
        assert_eq!(kinds("= <> != < <= > >= + - * / % ( ) , ."), expected);
    }

    #[test]
    fn tokenize_numbers() {
        let cases = [
            ("17", NumberLiteral::Int(17)),
            ("0", NumberLiteral::Int(0)),
            ("36.20", NumberLiteral::Float(36.2)),
            ("1e3", NumberLiteral::Float(1000.0)),
            ("2.5E-1", NumberLiteral::Float(0.25)),
            ("1e+2", NumberLiteral::Float(100.0)),
            (
                "9223372036854775808",
                NumberLiteral::Float(9_223_372_036_854_775_808.0),
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(
                kinds(sql),
                vec![TokenKind::Number(expected), TokenKind::End],
                "{sql}"
            );
        }
    }

    #[test]
    fn tokenize_invalid_numbers() {
        let cases = [
            ("1.", "decimal point"),
            ("1.x", "decimal point"),
            ("1e", "exponent"),
            ("1e-", "exponent"),
            ("1e999", "out of range"),
        ];
        for (sql, detail) in cases {
            let message = tokenize(sql).unwrap_err().to_string();
            assert!(message.contains(detail), "{sql}: {message}");
            assert!(message.contains("position 1"), "{sql}: {message}");
        }
    }

    #[test]
    fn tokenize_strings() {
        let cases = [
            ("'abc'", "abc"),
            ("''", ""),
            ("'it''s'", "it's"),
            ("\"a/b\"", "a/b"),
            ("\"say \"\"hi\"\"\"", "say \"hi\""),
            ("'36.2°C'", "36.2°C"),
            ("'x\"y'", "x\"y"),
        ];
        for (sql, expected) in cases {
            assert_eq!(
                kinds(sql),
                vec![TokenKind::String(expected.to_owned()), TokenKind::End],
                "{sql}"
            );
        }
    }

    #[test]
    fn tokenize_unterminated_string() {
        let error = tokenize("SELECT 'abc").unwrap_err();
        assert_eq!(
            error,
            RuleError::UnterminatedString {
                position: 8,
                quote: '\''
            }
        );
        assert!(
            error
                .to_string()
                .contains("unterminated string literal starting at position 8")
        );
    }

    #[test]
    fn tokenize_words() {
        assert_eq!(
            kinds("select Temp_1 wHeRe null"),
            vec![
                TokenKind::Keyword(Keyword::Select),
                TokenKind::Identifier("Temp_1".to_owned()),
                TokenKind::Keyword(Keyword::Where),
                TokenKind::Keyword(Keyword::Null),
                TokenKind::End,
            ]
        );
    }

    #[test]
    fn tokenize_unexpected_character() {
        let error = tokenize("SELECT a ; b").unwrap_err();
        assert_eq!(
            error,
            RuleError::UnexpectedCharacter {
                position: 10,
                found: ';'
            }
        );
        assert!(tokenize("a ! b").is_err());
    }

    #[test]
    fn char_position_counts_characters() {
        assert_eq!(char_position("é'x", 2), 2);
        assert_eq!(char_position("abc", 0), 1);
        assert_eq!(char_position("abc", 3), 4);
    }

    #[test]
    fn tokenize_spans() {
        let tokens = tokenize(" ab <= 'c'").unwrap();
        let spans: Vec<(usize, usize)> = tokens
            .iter()
            .map(|token| (token.start, token.end))
            .collect();
        assert_eq!(spans, vec![(1, 3), (4, 6), (7, 10), (10, 10)]);
    }
}
