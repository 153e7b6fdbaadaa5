//! YARA-L 2.0 syntax: the lexer, the syntax tree and the parser.

pub mod ast;
pub mod lexer;
pub mod parser;
