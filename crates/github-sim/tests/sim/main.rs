//! github-sim's tests, one binary: each module is one area of the simulator (its REST, GraphQL, webhooks,
//! Actions, git over HTTP, OAuth and App authentication, fault injection and its control API). One binary links
//! once instead of once per file, which keeps the build within a small CI disk.

mod common;

mod actions;
mod app_auth;
mod binary;
mod conformance;
mod control;
mod delivery_log;
mod dependencies;
mod faults;
mod git_http;
mod graphql;
mod manifest;
mod oauth;
mod octocrab_client;
mod rest;
mod sub_issues;
mod webhooks;
