//! Every GraphQL document Foreman sends (src/github/graphql/*.graphql) is valid against GitHub's public schema
//! (vendor/github/graphql/schema.graphql, octokit/graphql-schema), checked with apollo-compiler.

use std::path::{Path, PathBuf};

use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};

fn schema() -> Valid<Schema> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/vendor/github/graphql/schema.graphql");
    let text = std::fs::read_to_string(path).expect("GitHub's GraphQL schema in vendor/");
    // GitHub's published schema defines a few fields twice (e.g. `EnterpriseOwnerInfo.repositoryDeployKeySetting`),
    // which strict schema validation refuses. The builder keeps the first definition and reports the rest;
    // only such duplicates are tolerated, anything else in the schema is a failure.
    match Schema::parse_and_validate(text, path) {
        Ok(schema) => schema,
        Err(e) => {
            let other: Vec<String> =
                e.errors.iter().map(|d| d.error.to_string()).filter(|m| !m.contains("duplicate definitions")).collect();
            assert!(other.is_empty(), "GitHub's schema has unexpected errors: {other:?}");
            Valid::assume_valid(e.partial)
        }
    }
}

fn documents() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/github/graphql");
    let mut docs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("src/github/graphql")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .collect();
    docs.sort();
    docs
}

#[test]
fn every_document_validates_against_githubs_schema() {
    let schema = schema();
    let docs = documents();
    assert!(docs.len() >= 5, "expected Foreman's GraphQL documents, found {docs:?}");
    let mut failures = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        if let Err(e) = ExecutableDocument::parse_and_validate(&schema, text, doc) {
            failures.push(format!("{}:\n{}", doc.display(), e.errors));
        }
    }
    assert!(failures.is_empty(), "invalid GraphQL documents:\n{}", failures.join("\n"));
}

#[test]
fn a_document_github_would_refuse_is_caught() {
    // The check above must be able to fail: a misspelt field and a wrong argument type are both refused.
    let schema = schema();
    for bad in [
        "query Q($org: String!) { organization(login: $org) { projectV2(number: 1) { idd } } }",
        "query Q($n: String!) { organization(login: \"o\") { projectV2(number: $n) { id } } }",
    ] {
        assert!(ExecutableDocument::parse_and_validate(&schema, bad, "bad.graphql").is_err(), "{bad}");
    }
}
