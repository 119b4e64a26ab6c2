//! The OpenAPI 3.1 document of the collector, served at `GET /v1/openapi.json`.
//!
//! Generated from the code with utoipa: each handler carries a `#[utoipa::path]` with its
//! parameters, request body and responses; the body schemas are derived from the types the
//! handlers read and write (`tally_protocol::Batch`, `BatchResponse`, `ErrorBody`,
//! `tally_insights::InsightRequest`, `Answer`); the dashboard's pages and assets are added
//! from the tables that mount them (`dashboard::PAGES`, `ASSETS`), and the insight names
//! from the catalog; the example batch is `collect::example`'s. The tests check that every route of [`crate::Collector::router`] is
//! described and every path described is routed, so the two cannot drift apart.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ResponseBuilder};

use crate::dashboard;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tally collector",
        description = "Privacy-first usage telemetry: ingest (native batches and Strapi's own client), \
            k-anonymous and private insights, health and metrics, the dashboard. Limits and their \
            defaults: docs/limits.md; the wire protocol: docs/protocol.md. Errors have the body \
            `{\"error\": code, \"message\": text}`; 429 and 503 carry `Retry-After`.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::ingest::post_batch,
        crate::strapi::track_v2,
        crate::strapi::track_legacy,
        crate::strapi::preflight,
        crate::list_insights,
        crate::get_insight,
        crate::healthz,
        crate::metrics,
        crate::dashboard::apps,
        crate::collect::schema,
        document,
    ),
    modifiers(&Generated),
    tags(
        (name = "ingest", description = "write-only: the answer says what became of the events sent"),
        (name = "strapi", description = "Strapi's own telemetry client (docs/strapi.md)"),
        (name = "insights", description = "answers, private (admin token) or public (k-anonymous)"),
        (name = "apps", description = "the schemas the collector enforces (no token)"),
        (name = "operations", description = "health, metrics and this document"),
        (name = "dashboard", description = "the web dashboard's pages and assets (docs/dashboard.md)"),
    )
)]
struct Document;

/// What the derive cannot see: the admin token's scheme, the insight names of the catalog,
/// the CORS preflight of the legacy Strapi route, and the dashboard's pages and assets.
struct Generated;

impl utoipa::Modify for Generated {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        let paths = &mut doc.paths.paths;
        if let Some(insight) = paths.get_mut("/v1/insights/{name}") {
            let names: Vec<_> = tally_insights::CATALOG.iter().map(|i| i.name).collect();
            for op in insight.get.iter_mut() {
                for p in op.parameters.iter_mut().flatten().filter(|p| p.name == "name") {
                    p.schema = Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::Type::String)
                            .enum_values(Some(names.clone()))
                            .into(),
                    );
                }
            }
        }
        // An example batch the built-in demo schema accepts, dated when the document is
        // built, so that generated requests start from one that is stored.
        if let Some(op) = paths.get_mut("/v1/batch").and_then(|item| item.post.as_mut())
            && let Some(demo) = crate::builtin::load(None).ok().and_then(|schemas| schemas.get("demo").cloned())
        {
            let mut batch = crate::collect::example(&demo);
            let now = chrono::Utc::now();
            batch.sent_at = now;
            for event in &mut batch.events {
                event.occurred_at = now;
            }
            for content in op.request_body.iter_mut().flat_map(|body| body.content.values_mut()) {
                content.example = serde_json::to_value(&batch).ok();
            }
        }
        let preflight = paths.get("/api/v2/track").and_then(|item| item.options.clone());
        if let (Some(preflight), Some(legacy)) = (preflight, paths.get_mut("/track")) {
            legacy.options = Some(preflight);
        }
        let page = |summary: &str| {
            let ok = ResponseBuilder::new()
                .description("the dashboard's HTML shell, which draws the page in the browser")
                .content("text/html", ContentBuilder::new().build())
                .build();
            OperationBuilder::new().tag("dashboard").summary(Some(summary)).response("200", ok).build()
        };
        for path in dashboard::PAGES {
            paths.insert(
                path.to_string(),
                PathItem::new(HttpMethod::Get, page("a private page (asks for the admin token in the browser)")),
            );
        }
        for path in dashboard::APP_PAGES {
            let mut op = page("a public page of one app (no token)");
            op.parameters = Some(vec![
                utoipa::openapi::path::ParameterBuilder::new()
                    .name("app")
                    .parameter_in(utoipa::openapi::path::ParameterIn::Path)
                    .required(utoipa::openapi::Required::True)
                    .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String)))
                    .build(),
            ]);
            paths.insert(path.to_string(), PathItem::new(HttpMethod::Get, op));
        }
        for (path, content_type, _) in dashboard::ASSETS {
            let media = content_type.split(';').next().unwrap_or(content_type);
            let ok = ResponseBuilder::new()
                .description("the asset, compiled into the binary")
                .content(media, ContentBuilder::new().build())
                .build();
            let op = OperationBuilder::new().tag("dashboard").summary(Some("a dashboard asset")).response("200", ok);
            paths.insert(path.to_string(), PathItem::new(HttpMethod::Get, op.build()));
        }
    }
}

/// The document, built once.
pub(crate) fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(Document::openapi)
}

/// `GET /v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "the OpenAPI document", body = Object, content_type = "application/json")),
)]
pub(crate) async fn document() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| openapi().to_json().expect("an OpenAPI document serializes"));
    ([(header::CONTENT_TYPE, "application/json")], json.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::{Body, to_bytes};
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    fn collector() -> crate::Collector {
        crate::Collector::new(
            std::sync::Arc::new(tally_store::MemoryStore::default()),
            crate::builtin::load(None).expect("schemas"),
            tally_store::ServerSecret::from_bytes([7; 32]),
            crate::Settings::default(),
        )
        .expect("collector")
    }

    /// The paths the router routes, read from its `Debug` form (axum has no other way to
    /// list them): its path table prints as `RouteId(n): "/path"`.
    fn routed_paths(router: &axum::Router) -> BTreeSet<String> {
        let debug = format!("{router:?}");
        let paths: BTreeSet<String> = debug
            .split("): \"")
            .skip(1)
            .filter_map(|after| after.split_once('"').map(|(path, _)| path.to_string()))
            // axum's own catch-all for a merged router's fallback, not a route.
            .filter(|p| !p.contains("__private__axum"))
            .collect();
        assert!(paths.contains("/v1/batch"), "cannot read the routes from the router's Debug form");
        paths
    }

    fn documented() -> BTreeSet<String> {
        openapi().paths.paths.keys().cloned().collect()
    }

    #[test]
    fn every_route_is_described_and_every_described_path_is_routed() {
        let routed = routed_paths(&collector().router());
        let documented = documented();
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(missing.is_empty(), "routes the OpenAPI document does not describe: {missing:?}");
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(unrouted.is_empty(), "paths the document describes but the router does not route: {unrouted:?}");
    }

    #[tokio::test]
    async fn every_method_a_route_answers_is_described_and_no_other() {
        let router = collector().router();
        let methods = [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS];
        for (path, item) in &openapi().paths.paths {
            let concrete = path.replace("{app}", "demo").replace("{name}", "active");
            for method in &methods {
                let described = match *method {
                    Method::GET => item.get.is_some(),
                    Method::POST => item.post.is_some(),
                    Method::PUT => item.put.is_some(),
                    Method::DELETE => item.delete.is_some(),
                    Method::PATCH => item.patch.is_some(),
                    _ => item.options.is_some(),
                };
                let request = Request::builder().method(method).uri(&concrete).body(Body::empty()).expect("request");
                let status = router.clone().oneshot(request).await.expect("answer").status();
                let routed = status != StatusCode::METHOD_NOT_ALLOWED;
                assert_eq!(routed, described, "{method} {path}: answered {status}, described: {described}");
            }
        }
    }

    #[tokio::test]
    async fn the_documented_example_batch_is_accepted() {
        let op = openapi().paths.paths["/v1/batch"].post.as_ref().expect("POST /v1/batch");
        let body = op.request_body.as_ref().expect("a body");
        let example = body.content["application/json"].example.as_ref().expect("an example");
        let request = Request::post("/v1/batch")
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(example).expect("json")))
            .expect("request");
        let response = collector().router().oneshot(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(answer["accepted"], 1, "{answer}");
    }

    #[tokio::test]
    async fn the_document_is_served_without_a_token_and_names_every_insight_parameter() {
        let response = collector()
            .router()
            .oneshot(Request::get("/v1/openapi.json").body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(doc, serde_json::to_value(openapi()).expect("json"));
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
        let params: BTreeSet<&str> = doc["paths"]["/v1/insights/{name}"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| p["name"].as_str().expect("name"))
            .collect();
        // Every field of the request type, which is what the handler reads the query into.
        let fields = tally_insights::InsightRequest::query_pairs(&tally_insights::InsightRequest {
            since: Some(String::new()),
            from: Some(String::new()),
            to: Some(String::new()),
            env: Some(tally_protocol::Env::Test),
            os: Some(String::new()),
            app_version: Some(String::new()),
            plugin: Some(String::new()),
            period: Some(tally_store::Period::Day),
            group_by: Some(tally_store::Dimension::Env),
            window_days: Some(1),
            event: Some(String::new()),
            focus: Some(String::new()),
            weeks: Some(1),
            baseline: Some(String::new()),
            ..serde_json::from_str(r#"{"app":"demo"}"#).expect("request")
        });
        for (field, _) in &fields {
            assert!(params.contains(field.as_str()), "{field} is not described: {params:?}");
        }
        assert_eq!(params.len(), fields.len() + 1, "{params:?}");
        let names = doc["paths"]["/v1/insights/{name}"]["get"]["parameters"][0]["schema"]["enum"]
            .as_array()
            .expect("insight names")
            .len();
        assert_eq!(names, tally_insights::CATALOG.len());
        for schema in ["Batch", "Context", "Event", "BatchResponse", "ErrorBody", "Answer"] {
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema} missing");
        }
    }
}
