//! The dashboards and alerts of deploy/ name only metrics a running gateway serves on
//! `/metrics`, and every alert has its runbook in docs/operations.md.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

/// Keywords, modifiers and aggregation operators of PromQL that look like names (an
/// aggregation may be followed by `by (...)` before its parenthesis).
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
    "limitk", "limit_ratio",
];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names a PromQL expression selects: identifiers that are not functions,
/// keywords, label names (in matchers or grouping lists), strings, numbers or durations.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Blank out strings, label matchers and range selectors.
    let mut text = String::with_capacity(expr.len());
    let (mut quote, mut depth_brace, mut depth_bracket) = (None, 0, 0);
    let mut escaped = false;
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            text.push(' ');
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            _ => {
                text.push(c);
                continue;
            }
        }
        text.push(' ');
    }
    let chars: Vec<char> = text.chars().collect();
    let next_non_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        (i, chars.get(i).copied())
    };
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // A number or a duration (5m, 1e-9, 0.99).
            while i < chars.len() {
                let d = chars[i];
                let exponent_sign = (d == '-' || d == '+') && matches!(chars.get(i - 1), Some('e' | 'E'));
                if d.is_ascii_alphanumeric() || d == '.' || exponent_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let (after, next) = next_non_space(i);
            if LABEL_LISTS.contains(&word.as_str()) && next == Some('(') {
                // Skip the label list.
                i = after;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            if next != Some('(') && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

#[test]
fn metric_names_are_read_from_promql_without_functions_labels_or_durations() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, op) (rate(a_bucket{op!="x{y}", le=~".*"}[5m]))) > 1e-9
           and on(instance) group_left(job) b_total offset 5m / clamp_min(sum without (source) (c), 1e-9)
           or max(d:recorded) unless e[1h:5m] > bool 0.5"#,
    );
    let expected: BTreeSet<String> =
        ["a_bucket", "b_total", "c", "d:recorded", "e"].into_iter().map(str::to_owned).collect();
    assert_eq!(names, expected);
}

fn collect_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The sample names a `/metrics` page lists.
fn served_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// A GitHub-style anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_use_is_served_and_every_alert_has_a_runbook() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/voice-gateway.json")).unwrap();
    let mut dashboard_exprs = Vec::new();
    collect_exprs(&dashboard, &mut dashboard_exprs);
    assert!(dashboard_exprs.len() >= 20, "the dashboard has its panels");

    let alerts: serde_norway::Value = serde_norway::from_str(&read("deploy/prometheus/alerts.yml")).unwrap();
    let rules = alerts["groups"][0]["rules"].as_sequence().unwrap();
    let operations = read("docs/operations.md");
    let anchors: BTreeSet<String> =
        operations.lines().filter_map(|l| l.strip_prefix('#')).map(|h| anchor(h.trim_start_matches('#'))).collect();
    let mut alert_names = Vec::new();
    let mut alert_exprs = Vec::new();
    for rule in rules {
        let name = rule["alert"].as_str().unwrap();
        alert_names.push(name.to_owned());
        alert_exprs.push(rule["expr"].as_str().unwrap().to_owned());
        assert!(rule["labels"]["severity"].as_str().is_some(), "{name} has a severity");
        let runbook = rule["annotations"]["runbook"].as_str().unwrap();
        let target = runbook.strip_prefix("docs/operations.md#").unwrap();
        assert_eq!(target, name.to_lowercase(), "{name}'s runbook link");
        assert!(anchors.contains(target), "docs/operations.md has a runbook section for {name}");
    }
    for wanted in [
        "GatewayProviderErrorRate",
        "GatewayCallFailureRate",
        "GatewayLateFrames",
        "GatewayNoCallsCompleting",
        "GatewayWebhookBacklog",
    ] {
        assert!(alert_names.iter().any(|n| n == wanted), "alert {wanted}");
    }

    let app = spawn_app().await;
    let page = app.get("/metrics", "", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let served = served_names(&page.text);
    let mut used = BTreeSet::new();
    for expr in dashboard_exprs.iter().chain(&alert_exprs) {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr} selects a metric");
        used.extend(names);
    }
    let missing: Vec<&String> = used.iter().filter(|name| !served.contains(*name)).collect();
    assert!(missing.is_empty(), "used by deploy/ but not on /metrics: {missing:?}\n{}", page.text);
    for family in [
        "gateway_calls_finished_total",
        "gateway_call_setup_seconds_bucket",
        "gateway_first_agent_audio_seconds_bucket",
        "gateway_barge_in_stop_seconds_bucket",
        "gateway_frames_late_total",
        "gateway_provider_errors_total",
        "gateway_provider_reconnects_total",
        "gateway_webhook_deliveries_total",
        "gateway_webhook_outbox_pending",
        "gateway_recording_bytes_total",
        "gateway_db_query_seconds_bucket",
    ] {
        assert!(used.contains(family), "deploy/ shows {family}");
    }

    // Every metric the gateway serves is documented.
    for name in served.iter().filter(|n| n.starts_with("gateway_")) {
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(operations.contains(base), "docs/operations.md describes {base}");
    }
}
