//! The OpenAPI document, the route table and the router agree: every entry of `ROUTES` is
//! documented with its method and served by the real router, nothing is documented that the
//! table lacks, and the JSON the handlers answer has the fields the document promises.

mod common;

use common::{ADMIN_KEY, server};

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;
use tribune_server::app::ROUTES;
use tribune_server::openapi::ApiDoc;
use utoipa::OpenApi;

/// The document as JSON, as clients see it.
fn doc() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap()
}

async fn call(
    r: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(v) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    // Streams (live audio, events) never end: their first bytes are enough.
    let bytes = match status {
        StatusCode::OK if uri.ends_with("live.opus") || uri.ends_with("/events") => Vec::new(),
        _ => axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    };
    (status, bytes)
}

#[test]
fn every_route_is_documented_with_its_method() {
    let doc = doc();
    let missing: Vec<_> = ROUTES
        .iter()
        .filter(|(method, path)| doc["paths"][*path][method.to_lowercase()].is_null())
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document (add #[utoipa::path] and list the handler in \
         ApiDoc): {missing:?}"
    );
}

#[test]
fn every_documented_route_is_in_the_route_table() {
    let doc = doc();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_lowercase(), p.to_string()))
        .collect();
    let mut stale = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method == "parameters" {
                continue;
            }
            if !routes.contains(&(method.clone(), path.clone())) {
                stale.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");
}

#[test]
fn operation_ids_are_unique() {
    let doc = doc();
    let mut seen = BTreeSet::new();
    for (method, path) in ROUTES {
        let id = doc["paths"][*path][method.to_lowercase()]["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(
            seen.insert(id),
            "{method} {path}: operationId {id} used twice"
        );
    }
}

#[test]
fn documented_path_parameters_are_the_paths_own() {
    let doc = doc();
    for (method, path) in ROUTES {
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let op = &doc["paths"][*path][method.to_lowercase()];
        let documented: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(documented, in_path, "path parameters of {method} {path}");
    }
}

/// A request on every route reaches a handler: axum's own "no route" (404) and "no such
/// method" (405) have empty bodies, every handler's errors are `{"error": …}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_served() {
    let (_server, r) = server("openapi-served", "192.0.2.1:40000").await;
    for (method, path) in ROUTES {
        let uri: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "nope" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let (status, body) = call(&r, method, &uri, None, None).await;
        assert!(
            !status.is_server_error(),
            "{method} {uri}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        if matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            let error = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned));
            // A web page's handler answers an unknown space with the app, which says so.
            let page = String::from_utf8_lossy(&body).contains(&format!(
                "src=\"/app/{}/app.js\"",
                tribune_server::web::build_id()
            ));
            assert!(
                error.is_some() || page,
                "{method} {uri}: {status} from the router itself, not a handler (body {:?})",
                String::from_utf8_lossy(&body)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served() {
    let (_server, r) = server("openapi-doc", "192.0.2.1:40000").await;
    let (status, body) = call(&r, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, doc());
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(served["info"]["title"], "tribune");
    assert_eq!(served["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// The top-level property names of a schema, through `$ref` and `allOf` (`serde(flatten)`).
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        return properties(doc, &doc["components"]["schemas"][name]);
    }
    let mut out: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(properties(doc, part));
    }
    out
}

/// The JSON a handler answered has exactly the fields its documented response names.
fn assert_matches_doc(doc: &Value, method: &str, path: &str, status: StatusCode, body: &[u8]) {
    let schema = &doc["paths"][path][method]["responses"][status.as_str()]["content"]["application/json"]
        ["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} {status}: no JSON schema"
    );
    let v: Value = serde_json::from_slice(body).unwrap();
    let got: BTreeSet<String> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(got, properties(doc, schema), "{method} {path} {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_answers_have_the_documented_fields() {
    let doc = doc();
    let (_server, r) = server("openapi-fields", "192.0.2.1:40000").await;
    let check = |method: &'static str, path: &'static str| {
        let doc = &doc;
        move |(status, body): (StatusCode, Vec<u8>)| {
            assert_matches_doc(doc, method, path, status, &body);
            body
        }
    };

    check("get", "/healthz")(call(&r, "GET", "/healthz", None, None).await);
    let created = check("post", "/api/spaces")(
        call(
            &r,
            "POST",
            "/api/spaces",
            Some(ADMIN_KEY),
            Some(json!({"id": "s1"})),
        )
        .await,
    );
    let host: Value = serde_json::from_slice(&created).unwrap();
    let host = host["host_token"].as_str().unwrap();
    check("get", "/api/spaces")(call(&r, "GET", "/api/spaces", None, None).await);
    check("get", "/api/spaces/{id}")(call(&r, "GET", "/api/spaces/s1", None, None).await);
    check("get", "/api/spaces/{id}/timeline")(
        call(&r, "GET", "/api/spaces/s1/timeline", None, None).await,
    );
    check("post", "/api/spaces/{id}/tokens")(
        call(
            &r,
            "POST",
            "/api/spaces/s1/tokens",
            Some(host),
            Some(json!({"role": "speaker", "name": "Ada"})),
        )
        .await,
    );
    check("post", "/api/spaces/{id}/join")(
        call(
            &r,
            "POST",
            "/api/spaces/s1/join",
            None,
            Some(json!({"name": "Bob"})),
        )
        .await,
    );
    check("post", "/api/spaces/{id}/{verb}")(
        call(&r, "POST", "/api/spaces/s1/end", Some(host), None).await,
    );
    // Errors too: 404, 401, 409 (joining an ended space).
    check("get", "/api/spaces/{id}")(call(&r, "GET", "/api/spaces/nope", None, None).await);
    check("post", "/api/spaces")(call(&r, "POST", "/api/spaces", None, None).await);
    check("post", "/api/spaces/{id}/join")(
        call(&r, "POST", "/api/spaces/s1/join", None, None).await,
    );
}
