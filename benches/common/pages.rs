//! Requests to the pages' router for the benchmarks that time it: a login, then GETs with its
//! session cookie through `tower::ServiceExt::oneshot`, reading the whole body.

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Logs `user` in with the form; the session cookie.
pub async fn login(app: &Router, user: &str, password: &str) -> String {
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "name={user}&password={}",
            password.replace(' ', "+")
        )))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "login");
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// GETs `path` with the session and reads the whole body; returns the status and body size.
pub async fn get(app: &Router, path: &str, cookie: &str) -> (StatusCode, usize) {
    let request = Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.len())
}
