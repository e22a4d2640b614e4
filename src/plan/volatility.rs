//! Plan-time check of what delete conditions call: every function and operator must exist
//! and be IMMUTABLE or STABLE, casts must not go through a VOLATILE cast function, and
//! subqueries must read tables.
//!
//! A condition is a predicate evaluated for every row, with the rights of whoever applies
//! or runs retention (for pg_cron jobs, often a superuser). Names resolve as they will
//! when the prune procedure runs, with search_path `pg_catalog, pg_temp`: a function
//! written without a schema is one of pg_catalog's, operators are pg_catalog's. Argument
//! types are not known here, so every overload with the name and a fitting number of
//! arguments is checked (every operator of that name and kind): if any of them is
//! volatile, the call is refused. One query, for all rules of all policies.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use tokio_postgres::GenericClient;

use crate::catalog::Counting;
use crate::model::Project;
use crate::plan::checks::error_at;
use crate::policy::error::PolicyError;
use crate::policy::where_clause::{
    CONDITION_SEARCH_PATH, OperatorUse, QualifiedFunction, RelationName,
};

const LOOKUP: &str = "
SELECT 'function' AS kind, f.ord, p.oid::regprocedure::text AS object, p.provolatile::text AS detail, p.prokind::text AS routine_kind
  FROM unnest($1::text[], $2::text[], $3::int[]) WITH ORDINALITY AS f(nsp, name, nargs, ord)
  JOIN pg_namespace n ON n.nspname = f.nsp
  JOIN pg_proc p ON p.pronamespace = n.oid AND p.proname = f.name
   AND (f.nargs BETWEEN p.pronargs - p.pronargdefaults AND p.pronargs
        OR (p.provariadic <> 0 AND f.nargs >= p.pronargs - 1))
UNION ALL
SELECT 'operator', o.ord, op.oid::regoperator::text, pp.provolatile::text, NULL
  FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS o(name, oprkind, ord)
  JOIN pg_operator op ON op.oprnamespace = 'pg_catalog'::regnamespace
   AND op.oprname = o.name AND op.oprkind::text = o.oprkind
  JOIN pg_proc pp ON pp.oid = op.oprcode
UNION ALL
SELECT 'type', t.ord, to_regtype(t.name)::text, NULL, NULL
  FROM unnest($6::text[]) WITH ORDINALITY AS t(name, ord)
UNION ALL
SELECT 'cast', t.ord, format('%s to %s by %s', c.castsource::regtype, c.casttarget::regtype, c.castfunc::regprocedure),
       cp.provolatile::text, NULL
  FROM unnest($6::text[]) WITH ORDINALITY AS t(name, ord)
  JOIN pg_cast c ON c.casttarget = to_regtype(t.name)
  JOIN pg_proc cp ON cp.oid = c.castfunc AND cp.provolatile = 'v'
UNION ALL
SELECT 'relation', r.ord, format('%I.%I', r.nsp, r.name), c.relkind::text, NULL
  FROM unnest($7::text[], $8::text[]) WITH ORDINALITY AS r(nsp, name, ord)
  JOIN pg_namespace n ON n.nspname = r.nsp
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.name";

/// What the catalog says about each thing looked up, by its place in the lookup.
#[derive(Default)]
struct Found {
    /// (signature, provolatile, prokind) of each candidate function.
    functions: BTreeMap<usize, Vec<(String, String, String)>>,
    /// (signature, provolatile of its function) of each candidate operator.
    operators: BTreeMap<usize, Vec<(String, String)>>,
    types: BTreeMap<usize, Option<String>>,
    /// Volatile casts into the type.
    casts: BTreeMap<usize, Vec<String>>,
    /// relkind of each relation found.
    relations: BTreeMap<usize, String>,
}

/// Everything the project's conditions refer to, each once.
#[derive(Default)]
struct Lookup {
    functions: Vec<QualifiedFunction>,
    operators: Vec<OperatorUse>,
    types: Vec<String>,
    relations: Vec<RelationName>,
}

fn index_of<T: PartialEq + Clone>(items: &mut Vec<T>, item: &T) -> usize {
    match items.iter().position(|i| i == item) {
        Some(at) => at,
        None => {
            items.push(item.clone());
            items.len() - 1
        }
    }
}

/// Every problem with what the project's delete conditions call; empty when all is well.
pub async fn check<C: GenericClient + Sync>(
    client: &Counting<'_, C>,
    project: &Project,
) -> Result<Vec<PolicyError>> {
    let mut lookup = Lookup::default();
    for rule in project.policies.iter().flat_map(|p| &p.deletes) {
        let c = &rule.condition;
        for f in &c.functions {
            index_of(&mut lookup.functions, f);
        }
        for o in &c.operators {
            index_of(&mut lookup.operators, o);
        }
        for t in &c.cast_types {
            index_of(&mut lookup.types, t);
        }
        for r in &c.relations {
            index_of(&mut lookup.relations, r);
        }
    }
    if lookup.functions.is_empty()
        && lookup.operators.is_empty()
        && lookup.types.is_empty()
        && lookup.relations.is_empty()
    {
        return Ok(Vec::new());
    }
    let found = read(client, &lookup).await?;
    let mut errors = Vec::new();
    for policy in &project.policies {
        for (index, rule) in policy.deletes.iter().enumerate() {
            let key = format!("deletes[{index}].where");
            let mut problems = Vec::new();
            for function in &rule.condition.functions {
                let at = index_of(&mut lookup.functions, function);
                problems.extend(function_problem(function, found.functions.get(&at)));
            }
            for operator in &rule.condition.operators {
                let at = index_of(&mut lookup.operators, operator);
                problems.extend(operator_problem(operator, found.operators.get(&at)));
            }
            for type_name in &rule.condition.cast_types {
                let at = index_of(&mut lookup.types, type_name);
                problems.extend(cast_problem(
                    type_name,
                    found.types.get(&at),
                    found.casts.get(&at),
                ));
            }
            for relation in &rule.condition.relations {
                let at = index_of(&mut lookup.relations, relation);
                problems.extend(relation_problem(relation, found.relations.get(&at)));
            }
            errors.extend(problems.into_iter().map(|p| error_at(policy, &key, p)));
        }
    }
    Ok(errors)
}

async fn read<C: GenericClient + Sync>(client: &Counting<'_, C>, lookup: &Lookup) -> Result<Found> {
    let function_schemas: Vec<&str> = lookup.functions.iter().map(|f| f.lookup_schema()).collect();
    let function_names: Vec<&str> = lookup.functions.iter().map(|f| f.name.as_str()).collect();
    let function_arguments: Vec<i32> = lookup
        .functions
        .iter()
        .map(|f| i32::try_from(f.arguments).unwrap_or(i32::MAX))
        .collect();
    let operator_names: Vec<&str> = lookup.operators.iter().map(|o| o.symbol.as_str()).collect();
    let operator_kinds: Vec<&str> = lookup.operators.iter().map(|o| o.kind.oprkind()).collect();
    let relation_schemas: Vec<&str> = lookup.relations.iter().map(|r| r.schema.as_str()).collect();
    let relation_names: Vec<&str> = lookup.relations.iter().map(|r| r.name.as_str()).collect();
    let rows = client
        .query(
            LOOKUP,
            &[
                &function_schemas,
                &function_names,
                &function_arguments,
                &operator_names,
                &operator_kinds,
                &lookup.types,
                &relation_schemas,
                &relation_names,
            ],
        )
        .await
        .context("looking up the functions and operators of the delete conditions")?;
    let mut found = Found::default();
    for row in rows {
        let kind: String = row.get(0);
        // WITH ORDINALITY counts from 1.
        let at = usize::try_from(row.get::<_, i64>(1) - 1).unwrap_or(usize::MAX);
        let object: Option<String> = row.get(2);
        let detail: Option<String> = row.get(3);
        let routine_kind: Option<String> = row.get(4);
        let object_text = object.clone().unwrap_or_default();
        let detail = detail.unwrap_or_default();
        match kind.as_str() {
            "function" => found.functions.entry(at).or_default().push((
                object_text,
                detail,
                routine_kind.unwrap_or_default(),
            )),
            "operator" => found
                .operators
                .entry(at)
                .or_default()
                .push((object_text, detail)),
            "type" => {
                found.types.insert(at, object);
            }
            "cast" => found.casts.entry(at).or_default().push(object_text),
            "relation" => {
                found.relations.insert(at, detail);
            }
            _ => {}
        }
    }
    Ok(found)
}

fn volatility_name(code: &str) -> &'static str {
    match code {
        "i" => "IMMUTABLE",
        "s" => "STABLE",
        _ => "VOLATILE",
    }
}

fn function_problem(
    function: &QualifiedFunction,
    candidates: Option<&Vec<(String, String, String)>>,
) -> Option<String> {
    let arguments = match function.arguments {
        1 => "1 argument".to_string(),
        n => format!("{n} arguments"),
    };
    let Some(candidates) = candidates else {
        let hint = if function.schema.is_none() {
            format!(
                "; the condition runs with search_path {CONDITION_SEARCH_PATH}, so a function of your own must be \
                 schema-qualified, such as public.{}(...)",
                function.name
            )
        } else {
            String::new()
        };
        return Some(format!(
            "the condition calls {function} with {arguments}, but schema {} has no such function{hint}",
            function.lookup_schema()
        ));
    };
    if let Some((signature, _, kind)) = candidates.iter().find(|(_, _, kind)| kind != "f") {
        let what = match kind.as_str() {
            "a" => "an aggregate function",
            "w" => "a window function",
            "p" => "a procedure",
            _ => "not a plain function",
        };
        return Some(format!(
            "the condition calls {signature}, which is {what}; a delete condition calls plain functions, evaluated row by row"
        ));
    }
    let (signature, volatility, _) = candidates.iter().find(|(_, v, _)| v == "v")?;
    let overloads = if candidates.len() > 1 {
        format!(
            " ({} functions fit the name and {arguments}; each must be IMMUTABLE or STABLE, as PostgreSQL could choose any of them)",
            candidates.len()
        )
    } else {
        String::new()
    };
    Some(format!(
        "the condition calls {signature}, which is {}{overloads}; a delete condition may call only IMMUTABLE or STABLE functions \
         (it is evaluated for every row, with the rights of whoever runs retention)",
        volatility_name(volatility)
    ))
}

fn operator_problem(
    operator: &OperatorUse,
    candidates: Option<&Vec<(String, String)>>,
) -> Option<String> {
    let Some(candidates) = candidates else {
        return Some(format!(
            "the condition uses the {operator}, which schema pg_catalog does not have (the condition runs with search_path {CONDITION_SEARCH_PATH})"
        ));
    };
    let (signature, _) = candidates.iter().find(|(_, v)| v == "v")?;
    Some(format!(
        "the condition uses the {operator}, and {signature} runs a VOLATILE function; \
         a delete condition may use only operators whose functions are IMMUTABLE or STABLE"
    ))
}

fn cast_problem(
    type_name: &str,
    resolved: Option<&Option<String>>,
    volatile_casts: Option<&Vec<String>>,
) -> Option<String> {
    if resolved.and_then(|t| t.as_ref()).is_none() {
        return Some(format!(
            "the condition casts to {type_name}, which this database does not know"
        ));
    }
    let casts = volatile_casts?;
    Some(format!(
        "the condition casts to {type_name}, and this database has a cast to it through a VOLATILE function ({}); \
         a delete condition may not risk calling it",
        casts.join(", ")
    ))
}

fn relation_problem(relation: &RelationName, relkind: Option<&String>) -> Option<String> {
    let what = match relkind.map(String::as_str) {
        None => {
            return Some(format!(
                "the condition reads {relation}, which does not exist"
            ));
        }
        Some("r" | "p" | "m") => return None,
        Some("v") => "a view (its query would run inside the condition)",
        Some("f") => "a foreign table (reading it reaches another server)",
        Some(_) => "not a table",
    };
    Some(format!(
        "the condition reads {relation}, which is {what}; a subquery may read only tables and materialized views"
    ))
}
