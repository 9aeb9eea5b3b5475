//! The JMESPath parser, a port of the Pratt parser in `jmespath/parser.py`,
//! and the syntax tree it builds.

use serde_json::Value;

use super::QueryError;
use super::lexer::{Tok, Token, lex};
use crate::awscli::python::spaces;

/// A comparator of a filter condition (`==`, `!=`, `<`, `<=`, `>`, `>=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// The syntax tree of a query, with the node types of `jmespath.py`'s AST.
#[derive(Debug, Clone)]
pub(super) enum Node {
    /// `@`, and the implicit right side of a projection.
    Identity,
    /// `KeyId` or `"Key Id"`.
    Field(String),
    /// `left.right`: `right` applied to the result of `left`.
    Sub(Box<Node>, Box<Node>),
    /// `[i]`; negative counts from the end.
    Index(i64),
    /// `[start:stop:step]`, with Python's slice rules.
    Slice(Option<i64>, Option<i64>, i64),
    /// `left[*]` / `left[].right`: `right` applied to each element of the
    /// list `left` yields.
    Projection(Box<Node>, Box<Node>),
    /// `left.*.right`: `right` applied to each value of the object `left`
    /// yields.
    ValueProjection(Box<Node>, Box<Node>),
    /// `left[?condition].right`: (left, right, condition).
    FilterProjection(Box<Node>, Box<Node>, Box<Node>),
    /// `inner[]`: one level of nested lists merged.
    Flatten(Box<Node>),
    /// `[a, b]`.
    MultiList(Vec<Node>),
    /// `{name: a, other: b}`, in the order written.
    MultiHash(Vec<(String, Node)>),
    /// `'raw'` or `` `json` ``.
    Literal(Value),
    /// `left | right`.
    Pipe(Box<Node>, Box<Node>),
    /// `left || right`.
    Or(Box<Node>, Box<Node>),
    /// `left && right`.
    And(Box<Node>, Box<Node>),
    /// `!inner`.
    Not(Box<Node>),
    /// `left <op> right`.
    Compare(Cmp, Box<Node>, Box<Node>),
}

impl Tok {
    /// How tightly the token binds as an infix operator (`jmespath.py`'s
    /// `BINDING_POWER`); 0 for tokens that end an expression.
    fn binding_power(&self) -> u8 {
        match self {
            Tok::Pipe => 1,
            Tok::Or => 2,
            Tok::And => 3,
            Tok::Eq | Tok::Ne | Tok::Lt | Tok::Lte | Tok::Gt | Tok::Gte => 5,
            Tok::Flatten => 9,
            Tok::Star => 20,
            Tok::Filter => 21,
            Tok::Dot => 40,
            Tok::Not => 45,
            Tok::LBrace => 50,
            Tok::LBracket => 55,
            Tok::LParen => 60,
            _ => 0,
        }
    }
}

/// A Pratt parser over the tokens of one expression.
pub(super) struct Parser {
    expr: String,
    toks: Vec<Token>,
    pos: usize,
}

/// Tokens binding less tightly than this end a projection's right side
/// (`jmespath.py`'s `_PROJECTION_STOP`).
const PROJECTION_STOP: u8 = 10;

impl Parser {
    /// Parse a whole expression into its syntax tree.
    pub(super) fn parse(expr: &str) -> Result<Node, QueryError> {
        if expr.is_empty() {
            return Err(QueryError::Syntax {
                expression: String::new(),
                message: "Invalid JMESPath expression: cannot be empty.".to_string(),
            });
        }
        let mut p = Parser {
            expr: expr.to_string(),
            toks: lex(expr)?,
            pos: 0,
        };
        let node = p.expression(0)?;
        if p.current() != &Tok::Eof {
            let t = p.token(0).clone();
            return Err(p.parse_error(&t, &format!("Unexpected token: {}", t.text)));
        }
        Ok(node)
    }

    fn token(&self, ahead: usize) -> &Token {
        let i = (self.pos + ahead).min(self.toks.len() - 1);
        &self.toks[i]
    }

    fn current(&self) -> &Tok {
        &self.token(0).tok
    }

    fn advance(&mut self) {
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
    }

    fn parse_error(&self, t: &Token, msg: &str) -> QueryError {
        QueryError::Syntax {
            expression: self.expr.clone(),
            message: format!(
                "{msg}: Parse error at column {}, token \"{}\" ({}), for expression:\n\"{}\"\n{}^",
                t.start,
                t.text,
                t.tok.type_name().to_uppercase(),
                self.expr,
                spaces(t.start + 1)
            ),
        }
    }

    fn incomplete(&self, t: &Token) -> QueryError {
        QueryError::Syntax {
            expression: self.expr.clone(),
            message: format!(
                "Invalid jmespath expression: Incomplete expression:\n\"{}\"\n{}^",
                self.expr,
                spaces(t.start + 1)
            ),
        }
    }

    fn unsupported(&self, what: &str) -> QueryError {
        QueryError::Unsupported {
            expression: self.expr.clone(),
            message: format!("{what} not supported by kmsfs"),
        }
    }

    /// `_raise_parse_error_maybe_eof`
    fn expect_error(&self, expected: &str) -> QueryError {
        let t = self.token(0);
        if t.tok == Tok::Eof {
            self.incomplete(t)
        } else {
            self.parse_error(
                t,
                &format!("Expecting: {expected}, got: {}", t.tok.type_name()),
            )
        }
    }

    fn expect(&mut self, tok: Tok) -> Result<(), QueryError> {
        if *self.current() == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.expect_error(tok.type_name()))
        }
    }

    fn expression(&mut self, rbp: u8) -> Result<Node, QueryError> {
        let t = self.token(0).clone();
        self.advance();
        let mut left = self.nud(t)?;
        while rbp < self.current().binding_power() {
            let t = self.token(0).clone();
            self.advance();
            left = self.led(t, left)?;
        }
        Ok(left)
    }

    fn nud(&mut self, t: Token) -> Result<Node, QueryError> {
        match t.tok {
            Tok::Ident(name) => Ok(Node::Field(name)),
            Tok::Quoted(name) => {
                if *self.current() == Tok::LParen {
                    let t = self.token(0).clone();
                    return Err(
                        self.parse_error(&t, "Quoted identifier not allowed for function names.")
                    );
                }
                Ok(Node::Field(name))
            }
            Tok::Literal(v) => Ok(Node::Literal(v)),
            Tok::Current => Ok(Node::Identity),
            Tok::Star => {
                let right = if *self.current() == Tok::RBracket {
                    Node::Identity
                } else {
                    self.projection_rhs(Tok::Star.binding_power())?
                };
                Ok(Node::ValueProjection(
                    Box::new(Node::Identity),
                    Box::new(right),
                ))
            }
            Tok::Filter => self.led_filter(Node::Identity),
            Tok::LBrace => self.multi_select_hash(),
            Tok::Flatten => {
                let left = Node::Flatten(Box::new(Node::Identity));
                let right = self.projection_rhs(Tok::Flatten.binding_power())?;
                Ok(Node::Projection(Box::new(left), Box::new(right)))
            }
            Tok::LBracket => {
                if matches!(self.current(), Tok::Number(_) | Tok::Colon) {
                    let right = self.index_expression()?;
                    self.project_if_slice(Node::Identity, right)
                } else if *self.current() == Tok::Star && self.token(1).tok == Tok::RBracket {
                    self.advance();
                    self.advance();
                    let right = self.projection_rhs(Tok::Star.binding_power())?;
                    Ok(Node::Projection(Box::new(Node::Identity), Box::new(right)))
                } else {
                    self.multi_select_list()
                }
            }
            Tok::Not => {
                let e = self.expression(Tok::Not.binding_power())?;
                Ok(Node::Not(Box::new(e)))
            }
            Tok::LParen => {
                let e = self.expression(0)?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Tok::Expref => Err(self.unsupported("expression references (&) are")),
            Tok::Eof => Err(self.incomplete(&t)),
            _ => Err(self.parse_error(&t, "invalid token")),
        }
    }

    fn led(&mut self, t: Token, left: Node) -> Result<Node, QueryError> {
        match t.tok {
            Tok::Dot => {
                if *self.current() == Tok::Star {
                    self.advance();
                    let right = self.projection_rhs(Tok::Dot.binding_power())?;
                    Ok(Node::ValueProjection(Box::new(left), Box::new(right)))
                } else {
                    let right = self.dot_rhs(Tok::Dot.binding_power())?;
                    Ok(Node::Sub(Box::new(left), Box::new(right)))
                }
            }
            Tok::Pipe => {
                let right = self.expression(Tok::Pipe.binding_power())?;
                Ok(Node::Pipe(Box::new(left), Box::new(right)))
            }
            Tok::Or => {
                let right = self.expression(Tok::Or.binding_power())?;
                Ok(Node::Or(Box::new(left), Box::new(right)))
            }
            Tok::And => {
                let right = self.expression(Tok::And.binding_power())?;
                Ok(Node::And(Box::new(left), Box::new(right)))
            }
            Tok::Eq | Tok::Ne | Tok::Lt | Tok::Lte | Tok::Gt | Tok::Gte => {
                let op = match t.tok {
                    Tok::Eq => Cmp::Eq,
                    Tok::Ne => Cmp::Ne,
                    Tok::Lt => Cmp::Lt,
                    Tok::Lte => Cmp::Lte,
                    Tok::Gt => Cmp::Gt,
                    _ => Cmp::Gte,
                };
                let right = self.expression(t.tok.binding_power())?;
                Ok(Node::Compare(op, Box::new(left), Box::new(right)))
            }
            Tok::Filter => self.led_filter(left),
            Tok::Flatten => {
                let left = Node::Flatten(Box::new(left));
                let right = self.projection_rhs(Tok::Flatten.binding_power())?;
                Ok(Node::Projection(Box::new(left), Box::new(right)))
            }
            Tok::LBracket => {
                if matches!(self.current(), Tok::Number(_) | Tok::Colon) {
                    let right = self.index_expression()?;
                    self.project_if_slice(left, right)
                } else {
                    self.expect(Tok::Star)?;
                    self.expect(Tok::RBracket)?;
                    let right = self.projection_rhs(Tok::Star.binding_power())?;
                    Ok(Node::Projection(Box::new(left), Box::new(right)))
                }
            }
            Tok::LParen => Err(self.unsupported("functions are")),
            _ => Err(self.parse_error(&t, "invalid token")),
        }
    }

    fn led_filter(&mut self, left: Node) -> Result<Node, QueryError> {
        let condition = self.expression(0)?;
        self.expect(Tok::RBracket)?;
        let right = if *self.current() == Tok::Flatten {
            Node::Identity
        } else {
            self.projection_rhs(Tok::Filter.binding_power())?
        };
        Ok(Node::FilterProjection(
            Box::new(left),
            Box::new(right),
            Box::new(condition),
        ))
    }

    fn project_if_slice(&mut self, left: Node, right: Node) -> Result<Node, QueryError> {
        let is_slice = matches!(right, Node::Slice(..));
        let index_expr = Node::Sub(Box::new(left), Box::new(right));
        if is_slice {
            let rhs = self.projection_rhs(Tok::Star.binding_power())?;
            Ok(Node::Projection(Box::new(index_expr), Box::new(rhs)))
        } else {
            Ok(index_expr)
        }
    }

    fn index_expression(&mut self) -> Result<Node, QueryError> {
        if *self.current() == Tok::Colon || self.token(1).tok == Tok::Colon {
            return self.slice_expression();
        }
        let n = match self.current() {
            Tok::Number(n) => *n,
            _ => 0,
        };
        self.advance();
        self.expect(Tok::RBracket)?;
        Ok(Node::Index(n))
    }

    fn slice_expression(&mut self) -> Result<Node, QueryError> {
        let mut parts: [Option<i64>; 3] = [None, None, None];
        let mut index = 0;
        while *self.current() != Tok::RBracket && index < 3 {
            match self.current().clone() {
                Tok::Colon => {
                    index += 1;
                    if index == 3 {
                        let t = self.token(0).clone();
                        return Err(self.parse_error(&t, "syntax error"));
                    }
                    self.advance();
                }
                Tok::Number(n) => {
                    parts[index] = Some(n);
                    self.advance();
                }
                _ => {
                    let t = self.token(0).clone();
                    return Err(self.parse_error(&t, "syntax error"));
                }
            }
        }
        self.expect(Tok::RBracket)?;
        let step = parts[2].unwrap_or(1);
        if step == 0 {
            return Err(QueryError::Unsupported {
                expression: self.expr.clone(),
                message: "Invalid slice expression: step cannot be 0".to_string(),
            });
        }
        Ok(Node::Slice(parts[0], parts[1], step))
    }

    fn projection_rhs(&mut self, rbp: u8) -> Result<Node, QueryError> {
        let cur = self.current().clone();
        if cur.binding_power() < PROJECTION_STOP {
            Ok(Node::Identity)
        } else if cur == Tok::LBracket || cur == Tok::Filter {
            self.expression(rbp)
        } else if cur == Tok::Dot {
            self.advance();
            self.dot_rhs(rbp)
        } else {
            let t = self.token(0).clone();
            Err(self.parse_error(&t, "syntax error"))
        }
    }

    fn dot_rhs(&mut self, rbp: u8) -> Result<Node, QueryError> {
        match self.current() {
            Tok::Ident(_) | Tok::Quoted(_) | Tok::Star => self.expression(rbp),
            Tok::LBracket => {
                self.advance();
                self.multi_select_list()
            }
            Tok::LBrace => {
                self.advance();
                self.multi_select_hash()
            }
            other => {
                let msg = format!(
                    "Expecting: ['quoted_identifier', 'unquoted_identifier', 'lbracket', 'lbrace'], got: {}",
                    other.type_name()
                );
                let t = self.token(0).clone();
                Err(self.parse_error(&t, &msg))
            }
        }
    }

    fn multi_select_list(&mut self) -> Result<Node, QueryError> {
        let mut items = Vec::new();
        loop {
            items.push(self.expression(0)?);
            if *self.current() == Tok::RBracket {
                break;
            }
            self.expect(Tok::Comma)?;
        }
        self.expect(Tok::RBracket)?;
        Ok(Node::MultiList(items))
    }

    fn multi_select_hash(&mut self) -> Result<Node, QueryError> {
        let mut pairs = Vec::new();
        loop {
            let key = match self.current() {
                Tok::Ident(k) | Tok::Quoted(k) => k.clone(),
                _ => return Err(self.expect_error("['quoted_identifier', 'unquoted_identifier']")),
            };
            self.advance();
            self.expect(Tok::Colon)?;
            let value = self.expression(0)?;
            pairs.push((key, value));
            match self.current() {
                Tok::Comma => self.advance(),
                Tok::RBrace => {
                    self.advance();
                    break;
                }
                _ => {}
            }
        }
        Ok(Node::MultiHash(pairs))
    }
}
