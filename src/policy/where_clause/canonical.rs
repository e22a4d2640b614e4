//! The whitelist of expression forms a delete condition may use, and the printer that
//! writes each of them in one canonical way.
//!
//! Printing rules (stable across releases: the text is fingerprinted):
//! - one space between tokens; keywords in upper case; names folded as PostgreSQL folds
//!   them, written bare when they are plain lower-case non-keywords, else double-quoted;
//! - an operand that is not an atom (a name, a literal, a call, a CAST, a CASE, ...) is
//!   parenthesized, so precedence never depends on the reader; only AND and OR chains
//!   go without, as they bind loosest everywhere;
//! - string literals as `'...'`, or `E'...'` (doubled backslashes, `\uXXXX` for
//!   invisible characters) when they hold a backslash or an invisible character;
//! - casts as `CAST(x AS type)`, typed literals (`DATE '...'`) likewise.

use sqlparser::ast::{
    AccessExpr, Array, BinaryOperator, CastKind, CeilFloorKind, DataType, DateTimeField,
    ExactNumberInfo, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, InTarget, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr,
    Subscript, TableFactor, TimezoneInfo, UnaryOperator, Value,
};
use sqlparser::ast::{ArrayElemTypeDef, CharacterLength};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::{
    OperatorKind, OperatorUse, QualifiedFunction, References, RelationName, hidden_character_name,
};

/// Longest name PostgreSQL keeps (NAMEDATALEN - 1); longer ones are cut, so two
/// different names could meet.
const MAX_NAME_BYTES: usize = 63;

/// PostgreSQL's keywords that are not "unreserved" (`pg_get_keywords()` catcode C, T, R
/// in PostgreSQL 15): a name spelt like one of them is double-quoted.
const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// Calls that are PostgreSQL syntax rather than functions in pg_proc.
const SYNTAX_CALLS: &[&str] = &["coalesce", "nullif", "greatest", "least"];

/// Date and time values written without parentheses (stable, no lookup needed).
const TIME_VALUES: &[&str] = &[
    "current_date",
    "current_timestamp",
    "current_time",
    "localtimestamp",
    "localtime",
];

/// Prints `expr` canonically, with what it refers to; Err names the first form that is
/// not allowed.
pub(super) fn print(expr: &Expr) -> Result<(String, References), String> {
    let mut printer = Printer::default();
    let text = printer.expr(expr)?;
    Ok((text, printer.references))
}

#[derive(Default)]
struct Printer {
    references: References,
}

type Printed = Result<String, String>;

fn not_allowed(what: &str) -> String {
    format!(
        "{what} is not allowed in a delete condition; allowed are columns, literals, comparisons, AND/OR/NOT, \
         IS [NOT] NULL/TRUE/FALSE, [NOT] IN, BETWEEN, [I]LIKE, arithmetic, JSON and array operators, \
         CAST to a built-in type, CASE, COALESCE/NULLIF/GREATEST/LEAST, function calls, intervals, \
         and IN/EXISTS subqueries over one schema-qualified table"
    )
}

/// Parentheses the user wrote carry no meaning once every operand is parenthesized.
fn unwrap(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

fn is_atom(expr: &Expr) -> bool {
    match unwrap(expr) {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::Function(_)
        | Expr::Cast { .. }
        | Expr::TypedString(_)
        | Expr::Case { .. }
        | Expr::Interval(_)
        | Expr::Array(_)
        | Expr::Exists { .. }
        | Expr::Subquery(_)
        | Expr::Extract { .. }
        | Expr::Ceil { .. }
        | Expr::Floor { .. }
        | Expr::Substring { .. }
        | Expr::CompoundFieldAccess { .. } => true,
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => matches!(unwrap(expr), Expr::Value(v) if matches!(v.value, Value::Number(..))),
        _ => false,
    }
}

impl Printer {
    fn operator(&mut self, symbol: &str, kind: OperatorKind) {
        self.references.operators.insert(OperatorUse {
            symbol: symbol.to_string(),
            kind,
        });
    }

    /// An operand of an operator: an atom as it is, anything else parenthesized.
    fn operand(&mut self, expr: &Expr) -> Printed {
        let text = self.expr(expr)?;
        Ok(if is_atom(expr) {
            text
        } else {
            format!("({text})")
        })
    }

    fn expr(&mut self, expr: &Expr) -> Printed {
        let expr = unwrap(expr);
        Ok(match expr {
            Expr::Identifier(ident) => name(ident)?.printed,
            Expr::CompoundIdentifier(parts) => {
                if parts.len() > 2 {
                    return Err(format!(
                        "the column reference {} has {} parts; write a column as column or alias.column",
                        shown(expr),
                        parts.len()
                    ));
                }
                parts
                    .iter()
                    .map(|p| name(p).map(|n| n.printed))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(".")
            }
            Expr::Value(value) => literal(&value.value)?,
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right)?,
            Expr::UnaryOp { op, expr: inner } => self.unary(op, inner)?,
            Expr::IsNull(e) => format!("{} IS NULL", self.operand(e)?),
            Expr::IsNotNull(e) => format!("{} IS NOT NULL", self.operand(e)?),
            Expr::IsTrue(e) => format!("{} IS TRUE", self.operand(e)?),
            Expr::IsNotTrue(e) => format!("{} IS NOT TRUE", self.operand(e)?),
            Expr::IsFalse(e) => format!("{} IS FALSE", self.operand(e)?),
            Expr::IsNotFalse(e) => format!("{} IS NOT FALSE", self.operand(e)?),
            Expr::IsUnknown(e) => format!("{} IS UNKNOWN", self.operand(e)?),
            Expr::IsNotUnknown(e) => format!("{} IS NOT UNKNOWN", self.operand(e)?),
            Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..)
            | Expr::In { .. }
            | Expr::Between { .. }
            | Expr::Like { .. }
            | Expr::ILike { .. }
            | Expr::AnyOp { .. }
            | Expr::AllOp { .. } => self.comparison(expr)?,
            Expr::Function(function) => self.call(function)?,
            Expr::Cast { .. }
            | Expr::TypedString(_)
            | Expr::AtTimeZone { .. }
            | Expr::Interval(_)
            | Expr::Case { .. }
            | Expr::Extract { .. }
            | Expr::Ceil { .. }
            | Expr::Floor { .. }
            | Expr::Substring { .. }
            | Expr::Array(_)
            | Expr::CompoundFieldAccess { .. } => self.value_form(expr)?,
            Expr::Exists { subquery, negated } => {
                let not = if *negated { "NOT " } else { "" };
                format!("{not}EXISTS ({})", self.subquery(subquery)?)
            }
            Expr::Subquery(query) => format!("({})", self.subquery(query)?),
            Expr::SimilarTo { .. } => {
                return Err("SIMILAR TO is not allowed; use ~ with a regular expression".into());
            }
            Expr::Collate { .. } => return Err(not_allowed("COLLATE")),
            Expr::Tuple(_) => return Err(not_allowed("a row value (a, b)")),
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => return Err(not_allowed("*")),
            Expr::Position { .. } | Expr::Trim { .. } | Expr::Overlay { .. } => {
                return Err(not_allowed(
                    "POSITION/TRIM/OVERLAY syntax (write strpos(), btrim() or overlay() as functions)",
                ));
            }
            other => return Err(not_allowed(&describe(other))),
        })
    }

    /// Comparisons that are not plain binary operators: IS DISTINCT FROM, IN, BETWEEN,
    /// LIKE, ANY and ALL; each records the operator PostgreSQL will use for it.
    fn comparison(&mut self, expr: &Expr) -> Printed {
        Ok(match expr {
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                self.operator("=", OperatorKind::Infix);
                let not = if matches!(expr, Expr::IsNotDistinctFrom(..)) {
                    " NOT"
                } else {
                    ""
                };
                format!(
                    "{} IS{not} DISTINCT FROM {}",
                    self.operand(a)?,
                    self.operand(b)?
                )
            }
            Expr::In {
                expr: left,
                target,
                negated,
                global,
            } => {
                if *global {
                    return Err(not_allowed("GLOBAL IN"));
                }
                let not = if *negated { " NOT" } else { "" };
                let left = self.operand(left)?;
                self.operator("=", OperatorKind::Infix);
                match target {
                    InTarget::List(items) => {
                        if items.is_empty() {
                            return Err("IN () with an empty list is not valid SQL".into());
                        }
                        let items = items
                            .iter()
                            .map(|e| self.expr(e))
                            .collect::<Result<Vec<_>, _>>()?;
                        format!("{left}{not} IN ({})", items.join(", "))
                    }
                    InTarget::Subquery(query) => {
                        format!("{left}{not} IN ({})", self.subquery(query)?)
                    }
                    _ => {
                        return Err(not_allowed(
                            "IN over something other than a list or a subquery",
                        ));
                    }
                }
            }
            Expr::Between {
                expr: e,
                negated,
                low,
                high,
            } => {
                self.operator(">=", OperatorKind::Infix);
                self.operator("<=", OperatorKind::Infix);
                let not = if *negated { " NOT" } else { "" };
                format!(
                    "{}{not} BETWEEN {} AND {}",
                    self.operand(e)?,
                    self.operand(low)?,
                    self.operand(high)?
                )
            }
            Expr::Like {
                negated,
                any,
                expr: e,
                pattern,
                escape_char,
            }
            | Expr::ILike {
                negated,
                any,
                expr: e,
                pattern,
                escape_char,
            } => {
                let case_blind = matches!(expr, Expr::ILike { .. });
                if *any {
                    return Err(not_allowed("LIKE ANY"));
                }
                let (keyword, symbol) = match (case_blind, negated) {
                    (false, false) => ("LIKE", "~~"),
                    (false, true) => ("NOT LIKE", "!~~"),
                    (true, false) => ("ILIKE", "~~*"),
                    (true, true) => ("NOT ILIKE", "!~~*"),
                };
                self.operator(symbol, OperatorKind::Infix);
                let mut text = format!("{} {keyword} {}", self.operand(e)?, self.operand(pattern)?);
                if let Some(escape) = escape_char {
                    match unwrap(escape) {
                        Expr::Value(v) => {
                            text.push_str(&format!(" ESCAPE {}", literal(&v.value)?));
                        }
                        _ => return Err("ESCAPE takes a string literal".into()),
                    }
                }
                text
            }
            Expr::AnyOp {
                left,
                compare_op,
                right,
                is_some,
            } => {
                if *is_some {
                    return Err(not_allowed("SOME (write ANY)"));
                }
                let symbol = comparison_symbol(compare_op)?;
                self.operator(symbol, OperatorKind::Infix);
                format!(
                    "{} {symbol} ANY ({})",
                    self.operand(left)?,
                    self.array_or_subquery(right)?
                )
            }
            Expr::AllOp {
                left,
                compare_op,
                right,
            } => {
                let symbol = comparison_symbol(compare_op)?;
                self.operator(symbol, OperatorKind::Infix);
                format!(
                    "{} {symbol} ALL ({})",
                    self.operand(left)?,
                    self.array_or_subquery(right)?
                )
            }
            other => return Err(not_allowed(&describe(other))),
        })
    }

    /// Casts, typed literals, intervals, CASE, array values and the calls PostgreSQL
    /// writes with keywords (EXTRACT, substring(...), ...).
    fn value_form(&mut self, expr: &Expr) -> Printed {
        Ok(match expr {
            Expr::Cast {
                kind,
                expr: e,
                data_type,
                format,
            } => {
                if !matches!(kind, CastKind::Cast | CastKind::DoubleColon) {
                    return Err(not_allowed("TRY_CAST or SAFE_CAST"));
                }
                if format.is_some() {
                    return Err(not_allowed("CAST ... FORMAT"));
                }
                let type_name = self.cast_type(data_type)?;
                format!("CAST({} AS {type_name})", self.expr(e)?)
            }
            Expr::TypedString(typed) => {
                let type_name = self.cast_type(&typed.data_type)?;
                if typed.uses_odbc_syntax {
                    return Err(not_allowed("an ODBC literal"));
                }
                match &typed.value.value {
                    Value::SingleQuotedString(_)
                    | Value::EscapedStringLiteral(_)
                    | Value::UnicodeStringLiteral(_)
                    | Value::DollarQuotedString(_) => {}
                    _ => return Err(not_allowed("a typed literal that is not a string")),
                }
                format!("CAST({} AS {type_name})", literal(&typed.value.value)?)
            }
            Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                self.function(None, "timezone", 2);
                format!(
                    "{} AT TIME ZONE {}",
                    self.operand(timestamp)?,
                    self.operand(time_zone)?
                )
            }
            Expr::Interval(interval) => {
                if interval.leading_field.is_some()
                    || interval.last_field.is_some()
                    || interval.leading_precision.is_some()
                    || interval.fractional_seconds_precision.is_some()
                {
                    return Err(
                        "an interval with fields (INTERVAL '1' DAY) is not allowed; write the unit inside the string: INTERVAL '1 day'"
                            .into(),
                    );
                }
                match unwrap(&interval.value) {
                    Expr::Value(v) if v.value.clone().into_string().is_some() => {
                        format!("INTERVAL {}", literal(&v.value)?)
                    }
                    _ => {
                        return Err(
                            "INTERVAL takes a string literal, such as INTERVAL '1 day'".into()
                        );
                    }
                }
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let mut text = String::from("CASE");
                if let Some(operand) = operand {
                    self.operator("=", OperatorKind::Infix);
                    text.push_str(&format!(" {}", self.expr(operand)?));
                }
                for when in conditions {
                    text.push_str(&format!(
                        " WHEN {} THEN {}",
                        self.expr(&when.condition)?,
                        self.expr(&when.result)?
                    ));
                }
                if let Some(result) = else_result {
                    text.push_str(&format!(" ELSE {}", self.expr(result)?));
                }
                text.push_str(" END");
                text
            }
            Expr::Extract { field, expr: e, .. } => {
                let field = datetime_field(field)?;
                self.function(None, "extract", 2);
                format!("EXTRACT({field} FROM {})", self.expr(e)?)
            }
            Expr::Ceil { expr: e, field } | Expr::Floor { expr: e, field } => {
                let function = if matches!(expr, Expr::Ceil { .. }) {
                    "ceil"
                } else {
                    "floor"
                };
                if !matches!(
                    field,
                    CeilFloorKind::DateTimeField(DateTimeField::NoDateTime)
                ) {
                    return Err(not_allowed(&format!("{function} with TO or a scale")));
                }
                self.function(None, function, 1);
                format!("{function}({})", self.expr(e)?)
            }
            Expr::Substring {
                expr: e,
                substring_from,
                substring_for,
                special,
                shorthand,
            } => {
                if !special && !shorthand {
                    return Err(
                        "SUBSTRING(x FROM ... FOR ...) is not allowed; write substring(x, start, length)".into(),
                    );
                }
                let function = if *shorthand { "substr" } else { "substring" };
                let mut arguments = vec![self.expr(e)?];
                for argument in [substring_from, substring_for].into_iter().flatten() {
                    arguments.push(self.expr(argument)?);
                }
                self.function(None, function, arguments.len());
                format!("{function}({})", arguments.join(", "))
            }
            Expr::Array(Array { elem, named }) => {
                if !named {
                    return Err(not_allowed("an array written [..] (write ARRAY[..])"));
                }
                let items = elem
                    .iter()
                    .map(|e| self.expr(e))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("ARRAY[{}]", items.join(", "))
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                let mut text = match unwrap(root) {
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_) => self.expr(root)?,
                    _ => format!("({})", self.expr(root)?),
                };
                for access in access_chain {
                    match access {
                        AccessExpr::Subscript(Subscript::Index { index }) => {
                            text.push_str(&format!("[{}]", self.expr(index)?));
                        }
                        _ => return Err(not_allowed("an array slice or field access")),
                    }
                }
                text
            }
            other => return Err(not_allowed(&describe(other))),
        })
    }

    fn binary(&mut self, left: &Expr, op: &BinaryOperator, right: &Expr) -> Printed {
        if matches!(op, BinaryOperator::And | BinaryOperator::Or) {
            let keyword = if *op == BinaryOperator::And {
                "AND"
            } else {
                "OR"
            };
            let mut parts = Vec::new();
            for side in [left, right] {
                parts.push(self.junction_member(side, op)?);
            }
            return Ok(parts.join(&format!(" {keyword} ")));
        }
        let symbol = binary_symbol(op)?;
        self.operator(symbol, OperatorKind::Infix);
        Ok(format!(
            "{} {symbol} {}",
            self.operand(left)?,
            self.operand(right)?
        ))
    }

    /// A member of an AND or OR chain: the same junction continues without parentheses;
    /// the other one is parenthesized so that no reader needs their precedence.
    fn junction_member(&mut self, side: &Expr, op: &BinaryOperator) -> Printed {
        let side = unwrap(side);
        match side {
            Expr::BinaryOp {
                left,
                op: inner,
                right,
            } if inner == op => self.binary(left, inner, right),
            Expr::BinaryOp {
                op: BinaryOperator::And | BinaryOperator::Or,
                ..
            } => Ok(format!("({})", self.expr(side)?)),
            _ => self.expr(side),
        }
    }

    fn unary(&mut self, op: &UnaryOperator, inner: &Expr) -> Printed {
        let (symbol, keyword) = match op {
            UnaryOperator::Not => ("NOT", true),
            UnaryOperator::Minus => ("-", false),
            UnaryOperator::Plus => ("+", false),
            other => return Err(not_allowed(&format!("the prefix operator {other}"))),
        };
        if keyword {
            return Ok(format!("NOT {}", self.operand(inner)?));
        }
        self.operator(symbol, OperatorKind::Prefix);
        let operand = self.operand(inner)?;
        // `- -1` must never print as `--1`, a comment.
        Ok(if operand.starts_with(['-', '+']) {
            format!("{symbol}({operand})")
        } else {
            format!("{symbol}{operand}")
        })
    }

    fn array_or_subquery(&mut self, expr: &Expr) -> Printed {
        match unwrap(expr) {
            Expr::Subquery(query) => self.subquery(query),
            other => self.expr(other),
        }
    }

    fn function(&mut self, schema: Option<String>, name: &str, arguments: usize) {
        self.references.functions.insert(QualifiedFunction {
            schema,
            name: name.to_string(),
            arguments,
        });
    }

    fn call(&mut self, function: &Function) -> Printed {
        let Function {
            name: function_name,
            uses_odbc_syntax,
            parameters,
            args,
            within_group,
            filter,
            null_treatment,
            over,
        } = function;
        if *uses_odbc_syntax
            || !matches!(parameters, FunctionArguments::None)
            || !within_group.is_empty()
            || null_treatment.is_some()
        {
            return Err(not_allowed(&format!(
                "the call syntax of {}",
                shown_name(function_name)
            )));
        }
        if filter.is_some() || over.is_some() {
            return Err(format!(
                "{} is called as an aggregate or window function (FILTER/OVER); a delete condition is evaluated row by row",
                shown_name(function_name)
            ));
        }
        let parts = name_parts(function_name)?;
        let bare = match parts.as_slice() {
            [only] if only.quote_style.is_none() => Some(only.value.to_ascii_lowercase()),
            _ => None,
        };
        let arguments = match args {
            FunctionArguments::None => {
                return match bare.as_deref() {
                    Some(value) if TIME_VALUES.contains(&value) => Ok(value.to_ascii_uppercase()),
                    _ => Err(not_allowed(&format!(
                        "{} without parentheses",
                        shown_name(function_name)
                    ))),
                };
            }
            FunctionArguments::Subquery(_) => {
                return Err(not_allowed("a function called on a bare subquery"));
            }
            FunctionArguments::List(list) => self.arguments(list, function_name)?,
        };
        if let Some(value) = bare.as_deref() {
            if SYNTAX_CALLS.contains(&value) {
                if value == "nullif" {
                    self.operator("=", OperatorKind::Infix);
                }
                return Ok(format!(
                    "{}({})",
                    value.to_ascii_uppercase(),
                    arguments.join(", ")
                ));
            }
            if TIME_VALUES.contains(&value) {
                return Err(not_allowed(&format!("{value} with a precision")));
            }
        }
        let (schema, function) = match parts.as_slice() {
            [only] => (None, name(only)?),
            [schema, function] => (Some(name(schema)?), name(function)?),
            _ => {
                return Err(format!(
                    "the function name {} has {} parts; expected function or schema.function",
                    shown_name(function_name),
                    parts.len()
                ));
            }
        };
        self.function(
            schema.as_ref().map(|s| s.value.clone()),
            &function.value,
            arguments.len(),
        );
        let printed = match &schema {
            Some(schema) => format!("{}.{}", schema.printed, function.printed),
            None => function.printed,
        };
        Ok(format!("{printed}({})", arguments.join(", ")))
    }

    fn arguments(
        &mut self,
        list: &FunctionArgumentList,
        function: &ObjectName,
    ) -> Result<Vec<String>, String> {
        if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
            return Err(format!(
                "{} is called with DISTINCT, ORDER BY or another clause; a delete condition calls plain functions",
                shown_name(function)
            ));
        }
        list.args
            .iter()
            .map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => self.expr(e),
                FunctionArg::Unnamed(_) => Err(not_allowed(&format!(
                    "* as an argument of {}",
                    shown_name(function)
                ))),
                _ => Err(not_allowed(&format!(
                    "a named argument of {}",
                    shown_name(function)
                ))),
            })
            .collect()
    }

    /// `SELECT expr, ... FROM schema.table [AS alias] [WHERE condition]`, and nothing else.
    fn subquery(&mut self, query: &Query) -> Printed {
        let skeleton_error = || {
            not_allowed("a subquery other than SELECT ... FROM schema.table [alias] [WHERE ...]")
        };
        let SetExpr::Select(select) = query.body.as_ref() else {
            return Err(skeleton_error());
        };
        let [from] = select.from.as_slice() else {
            return Err(skeleton_error());
        };
        if !from.joins.is_empty() {
            return Err(skeleton_error());
        }
        let TableFactor::Table {
            name: table, alias, ..
        } = &from.relation
        else {
            return Err(skeleton_error());
        };
        // Everything but the parts printed below must be exactly as in the plainest
        // subquery, so that no clause is silently dropped.
        let mut rest = query.clone();
        let mut plain = plain_subquery();
        for q in [&mut rest, &mut plain] {
            if let SetExpr::Select(select) = q.body.as_mut() {
                select.projection.clear();
                select.selection = None;
                if let Some(TableFactor::Table { name, alias, .. }) =
                    select.from.first_mut().map(|from| &mut from.relation)
                {
                    *name = ObjectName(Vec::new());
                    *alias = None;
                }
            }
        }
        if rest != plain {
            return Err(skeleton_error());
        }
        let parts = name_parts(table)?;
        let [schema, relation] = parts.as_slice() else {
            return Err(format!(
                "the subquery reads {}; name the table with its schema, such as public.deleted_users \
                 (the condition runs with search_path {})",
                shown_name(table),
                super::CONDITION_SEARCH_PATH
            ));
        };
        let (schema, relation) = (name(schema)?, name(relation)?);
        self.references.relations.insert(RelationName {
            schema: schema.value.clone(),
            name: relation.value.clone(),
        });
        let mut text = String::from("SELECT ");
        if select.projection.is_empty() {
            return Err(skeleton_error());
        }
        let mut items = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(e) => items.push(self.expr(e)?),
                _ => return Err(not_allowed("a subquery selecting * or aliases")),
            }
        }
        text.push_str(&items.join(", "));
        text.push_str(&format!(" FROM {}.{}", schema.printed, relation.printed));
        if let Some(alias) = alias {
            if !alias.columns.is_empty() || alias.at.is_some() {
                return Err(not_allowed("a table alias with column names"));
            }
            text.push_str(&format!(" AS {}", name(&alias.name)?.printed));
        }
        if let Some(selection) = &select.selection {
            text.push_str(&format!(" WHERE {}", self.expr(selection)?));
        }
        Ok(text)
    }

    /// A cast's type: built-in types only, in PostgreSQL's spelling.
    fn cast_type(&mut self, data_type: &DataType) -> Printed {
        let name = builtin_type(data_type)?;
        self.references.cast_types.insert(name.clone());
        Ok(name)
    }
}

fn plain_subquery() -> Query {
    let dialect = PostgreSqlDialect {};
    *Parser::new(&dialect)
        .try_with_sql("SELECT 1 FROM s.t")
        .and_then(|mut p| p.parse_query())
        .expect("a fixed query parses")
}

fn builtin_type(data_type: &DataType) -> Printed {
    let length = |l: &Option<CharacterLength>| match l {
        None => Ok(String::new()),
        Some(CharacterLength::IntegerLength { length, unit: None }) => Ok(format!("({length})")),
        Some(_) => Err(not_allowed("this length of a character type")),
    };
    let numeric = |info: &ExactNumberInfo| match info {
        ExactNumberInfo::None => "numeric".to_string(),
        ExactNumberInfo::Precision(p) => format!("numeric({p})"),
        ExactNumberInfo::PrecisionAndScale(p, s) => format!("numeric({p},{s})"),
    };
    let precision = |p: &Option<u64>| p.map(|p| format!("({p})")).unwrap_or_default();
    let zone = |tz: &TimezoneInfo| match tz {
        TimezoneInfo::None | TimezoneInfo::WithoutTimeZone => " without time zone",
        TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => " with time zone",
    };
    Ok(match data_type {
        DataType::Text => "text".into(),
        DataType::Varchar(l) | DataType::CharacterVarying(l) | DataType::CharVarying(l) => {
            format!("varchar{}", length(l)?)
        }
        DataType::Char(l) | DataType::Character(l) => format!("char{}", length(l)?),
        DataType::Uuid => "uuid".into(),
        DataType::Numeric(info) | DataType::Decimal(info) | DataType::Dec(info) => numeric(info),
        DataType::SmallInt(None) | DataType::Int2(None) => "smallint".into(),
        DataType::Int(None) | DataType::Integer(None) | DataType::Int4(None) => "integer".into(),
        DataType::BigInt(None) | DataType::Int8(None) => "bigint".into(),
        DataType::Real | DataType::Float4 => "real".into(),
        DataType::DoublePrecision | DataType::Float8 => "double precision".into(),
        DataType::Bool | DataType::Boolean => "boolean".into(),
        DataType::Date => "date".into(),
        DataType::Timestamp(p, tz) => format!("timestamp{}{}", precision(p), zone(tz)),
        DataType::Time(p, tz) => format!("time{}{}", precision(p), zone(tz)),
        DataType::Interval {
            fields: None,
            precision: None,
        } => "interval".into(),
        DataType::JSON => "json".into(),
        DataType::JSONB => "jsonb".into(),
        DataType::Bytea => "bytea".into(),
        DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            let parts = name_parts(name)?;
            match parts.as_slice() {
                [only] if only.quote_style.is_none() => {
                    let lower = only.value.to_ascii_lowercase();
                    match lower.as_str() {
                        "inet" | "cidr" | "macaddr" => lower,
                        "timestamptz" => "timestamp with time zone".into(),
                        "int4" => "integer".into(),
                        "int8" => "bigint".into(),
                        _ => return Err(unknown_type(&shown_name(name))),
                    }
                }
                _ => return Err(unknown_type(&shown_name(name))),
            }
        }
        DataType::Array(ArrayElemTypeDef::SquareBracket(inner, None)) => {
            format!("{}[]", builtin_type(inner)?)
        }
        other => return Err(unknown_type(&other.to_string())),
    })
}

fn unknown_type(shown: &str) -> String {
    let shown: String = shown.chars().filter(|c| !c.is_control()).collect();
    format!(
        "a cast to {shown} is not allowed; a delete condition casts only to built-in types: text, varchar, char, \
         smallint, integer, bigint, numeric, real, double precision, boolean, date, time, timestamp, \
         timestamptz, interval, json, jsonb, uuid, bytea, inet, cidr, macaddr, and arrays of them"
    )
}

fn datetime_field(field: &DateTimeField) -> Printed {
    let text = field.to_string();
    let known = !matches!(field, DateTimeField::Custom(_) | DateTimeField::NoDateTime)
        && text.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    if known {
        Ok(text)
    } else {
        Err(not_allowed(&format!(
            "EXTRACT of {}",
            text.replace(|c: char| c.is_control(), " ")
        )))
    }
}

fn comparison_symbol(op: &BinaryOperator) -> Result<&'static str, String> {
    match op {
        BinaryOperator::Eq => Ok("="),
        BinaryOperator::NotEq => Ok("<>"),
        BinaryOperator::Lt => Ok("<"),
        BinaryOperator::LtEq => Ok("<="),
        BinaryOperator::Gt => Ok(">"),
        BinaryOperator::GtEq => Ok(">="),
        BinaryOperator::PGLikeMatch => Ok("~~"),
        BinaryOperator::PGILikeMatch => Ok("~~*"),
        BinaryOperator::PGRegexMatch => Ok("~"),
        BinaryOperator::PGRegexIMatch => Ok("~*"),
        other => Err(not_allowed(&format!("ANY/ALL with the operator {other}"))),
    }
}

/// The infix operators a delete condition may use, as PostgreSQL spells them.
fn binary_symbol(op: &BinaryOperator) -> Result<&'static str, String> {
    use BinaryOperator as B;
    Ok(match op {
        B::Plus => "+",
        B::Minus => "-",
        B::Multiply => "*",
        B::Divide => "/",
        B::Modulo => "%",
        B::PGExp => "^",
        B::StringConcat => "||",
        B::Eq => "=",
        B::NotEq => "<>",
        B::Lt => "<",
        B::LtEq => "<=",
        B::Gt => ">",
        B::GtEq => ">=",
        B::PGRegexMatch => "~",
        B::PGRegexIMatch => "~*",
        B::PGRegexNotMatch => "!~",
        B::PGRegexNotIMatch => "!~*",
        B::PGLikeMatch => "~~",
        B::PGILikeMatch => "~~*",
        B::PGNotLikeMatch => "!~~",
        B::PGNotILikeMatch => "!~~*",
        B::PGStartsWith => "^@",
        B::Arrow => "->",
        B::LongArrow => "->>",
        B::HashArrow => "#>",
        B::HashLongArrow => "#>>",
        B::AtArrow => "@>",
        B::ArrowAt => "<@",
        B::Question => "?",
        B::QuestionAnd => "?&",
        B::QuestionPipe => "?|",
        B::AtQuestion => "@?",
        B::AtAt => "@@",
        B::PGOverlap => "&&",
        B::PGCustomBinaryOperator(_) => {
            return Err(not_allowed("OPERATOR(schema.op)"));
        }
        other => {
            let shown: String = other
                .to_string()
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            return Err(not_allowed(&format!("the operator {shown}")));
        }
    })
}

/// A name as PostgreSQL resolves it (`value`) and as the canonical text writes it.
struct Name {
    value: String,
    printed: String,
}

fn name(ident: &Ident) -> Result<Name, String> {
    let value = match ident.quote_style {
        None => ident.value.to_ascii_lowercase(),
        Some('"') => ident.value.clone(),
        Some(_) => return Err(not_allowed("a name quoted other than with double quotes")),
    };
    if value.is_empty() {
        return Err("found an empty quoted name \"\"".into());
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the name {} is {} bytes long; PostgreSQL names are at most {MAX_NAME_BYTES}",
            shown_text(&value),
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| hidden_character_name(*c).is_some()) {
        return Err(format!(
            "a name holds {} (U+{:04X}); names must hold only visible characters",
            hidden_character_name(c).unwrap_or("a hidden character"),
            c as u32
        ));
    }
    let plain = value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !KEYWORDS.contains(&value.as_str());
    let printed = if plain {
        value.clone()
    } else {
        format!("\"{}\"", value.replace('"', "\"\""))
    };
    Ok(Name { value, printed })
}

fn name_parts(name: &ObjectName) -> Result<Vec<&Ident>, String> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(ident),
            ObjectNamePart::Function(_) => Err(not_allowed("a computed name")),
        })
        .collect()
}

fn literal(value: &Value) -> Printed {
    match value {
        Value::Number(text, long) => {
            if *long || !is_plain_number(text) {
                return Err(format!(
                    "the number {} is not allowed; write numbers as digits, with an optional fraction and exponent (1, 2.5, 1e6)",
                    shown_text(text)
                ));
            }
            Ok(text.clone())
        }
        Value::SingleQuotedString(text)
        | Value::EscapedStringLiteral(text)
        | Value::UnicodeStringLiteral(text) => string_literal(text),
        Value::DollarQuotedString(dollar) => string_literal(&dollar.value),
        Value::Boolean(true) => Ok("TRUE".into()),
        Value::Boolean(false) => Ok("FALSE".into()),
        Value::Null => Ok("NULL".into()),
        Value::Placeholder(p) => Err(format!(
            "the parameter {} is not allowed; a delete condition holds its values as literals",
            shown_text(p)
        )),
        Value::NationalStringLiteral(_) => Err(not_allowed("a national string N'...'")),
        Value::HexStringLiteral(_)
        | Value::SingleQuotedByteStringLiteral(_)
        | Value::DoubleQuotedByteStringLiteral(_) => {
            Err(not_allowed("a bit string X'...' or B'...'"))
        }
        _ => Err(not_allowed("this kind of literal")),
    }
}

/// Digits, an optional fraction and exponent: what PostgreSQL 15 and the parser read alike
/// (PostgreSQL 15 reads `0x1F` and `1_000` as a number followed by a name).
fn is_plain_number(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(whole)
        && fraction.is_none_or(digits)
        && (!whole.is_empty() || fraction.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// `'text'`, or `E'text'` when it holds a backslash or an invisible character: read the
/// same by PostgreSQL whatever `standard_conforming_strings` says.
fn string_literal(text: &str) -> Printed {
    if text.contains('\0') {
        return Err("a string holds a NUL character, which PostgreSQL text cannot hold".into());
    }
    let mut escaped = false;
    let mut body = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\'' => body.push_str("''"),
            '\\' => {
                escaped = true;
                body.push_str("\\\\");
            }
            _ if hidden_character_name(c).is_some() => {
                escaped = true;
                let code = c as u32;
                if code <= 0xFFFF {
                    body.push_str(&format!("\\u{code:04X}"));
                } else {
                    body.push_str(&format!("\\U{code:08X}"));
                }
            }
            _ => body.push(c),
        }
    }
    Ok(if escaped {
        format!("E'{body}'")
    } else {
        format!("'{body}'")
    })
}

/// Text from the policy for a message: invisible characters shown as escapes.
fn shown_text(text: &str) -> String {
    text.chars()
        .map(|c| match hidden_character_name(c) {
            Some(_) => format!("\\u{{{:04X}}}", c as u32),
            None => c.to_string(),
        })
        .collect()
}

fn shown_name(name: &ObjectName) -> String {
    shown_text(&name.to_string())
}

fn shown(expr: &Expr) -> String {
    shown_text(&expr.to_string())
}

/// What a refused expression is, in a few words.
fn describe(expr: &Expr) -> String {
    let debug = format!("{expr:?}");
    let kind: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let shown = shown(expr);
    let shown = if shown.chars().count() > 60 {
        format!("{}...", shown.chars().take(60).collect::<String>())
    } else {
        shown
    };
    format!("{shown} ({kind})")
}
