//! Call recordings against a real gateway: a synthetic session feeds the recording tap
//! (the caller's 440 Hz tone on the left, the agent's 1 kHz tone on the right), and the
//! stored file is fetched through the API's link, decoded and checked by frequency and
//! time on each channel; in a local directory and in a local S3 server. Also: signed
//! links (expiry, tampering, other companies), deleting a call, the retention sweep,
//! recovery of a recording a crash cut short, transcript downloads.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use gateway::ids::{CallId, CompanyId};
use gateway::recording::{EndInfo, RecordingTap};
use gateway::store::{CallSource, EndReason, NewCall, NewRecording, TranscriptLine, TranscriptRole};
use gateway::time::now_ms;
use media::SampleRate;
use media::test_signal::sine;
use reqwest::StatusCode;
use serde_json::json;
use testkit::LocalS3;
use testkit::recording::{assert_no_tone, assert_tone, decode};

/// Edges of a tone must be this close to where it was fed (the issue's ±40 ms).
const TOLERANCE_MS: u64 = 40;

/// A company with calls, its admin, and an ended call answered at `answered_at`.
async fn ended_call(app: &TestApp, name: &str, answered_at: i64) -> (CompanyId, String, CallId) {
    let (company, admin) = app.company_with_admin(name, true).await;
    let chatbot = app.call_chatbot(company, &admin).await;
    let call = new_call(app, company, &chatbot).await;
    let store = &app.state.store;
    assert!(store.mark_call_active(call, answered_at).await.unwrap());
    assert!(store.end_call(call, EndReason::CallerHangup, answered_at + 10_000, None).await.unwrap());
    (company, admin, call)
}

/// A call of `company` in status `connecting`.
async fn new_call(app: &TestApp, company: CompanyId, chatbot: &str) -> CallId {
    let store = &app.state.store;
    let call = store
        .create_call(NewCall {
            company_id: company,
            chatbot_id: chatbot.parse().unwrap(),
            source: CallSource::Web,
            is_test: false,
            caller: None,
            provider: "openai".into(),
            model_id: "gpt-realtime".into(),
            node_id: "test-node".into(),
            token_hash: None,
            token_expires_at: None,
            integration_account_id: None,
            external_id: None,
        })
        .await
        .unwrap();
    assert!(store.mark_call_connecting(call.id, "test-node").await.unwrap());
    call.id
}

/// Feeds a tap as a call session would, with a jittery caller: the caller says 440 Hz
/// (16 kHz frames) in slots `caller`, the agent 1 kHz (24 kHz frames) in slots `agent`.
/// Every fourth caller frame comes a slot late; every slot, both sides are offered.
async fn feed(tap: &RecordingTap, slots: u64, caller: std::ops::Range<u64>, agent: std::ops::Range<u64>) {
    let (cr, ar) = (SampleRate::Hz16000, SampleRate::Hz24000);
    let caller_tone = sine(cr, 440.0, 0.5, cr.samples_per_frame() * slots as usize);
    let agent_tone = sine(ar, 1_000.0, 0.5, ar.samples_per_frame() * slots as usize);
    let frame = |pcm: &[i16], rate: SampleRate, slot: u64| {
        let n = rate.samples_per_frame();
        pcm[slot as usize * n..(slot as usize + 1) * n].to_vec()
    };
    let mut held: Option<u64> = None;
    for slot in 0..slots {
        if caller.contains(&slot) {
            if slot % 4 == 1 {
                held = Some(slot);
            } else {
                tap.caller(slot, &frame(&caller_tone, cr, slot), cr);
                if let Some(late) = held.take() {
                    tap.caller(late, &frame(&caller_tone, cr, late), cr);
                }
            }
        }
        if agent.contains(&slot) {
            tap.other(slot, &frame(&agent_tone, ar, slot), ar);
        }
        // A real session takes 20 ms per slot; this one goes as fast as the writer does.
        while tap.queued() > 20 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(tap.dropped(), 0, "the writer kept up");
}

/// The API's link to a call's recording, fetched and checked: tones on their channels.
async fn check_recording(app: &TestApp, admin: &str, call: CallId, end_slot: u64) -> serde_json::Value {
    let reply = app.get(&format!("/api/company/calls/{call}/recording"), admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["format"], "ogg/opus");
    assert_eq!(reply.body["durationMs"], end_slot * 20);
    let expires = chrono::DateTime::parse_from_rfc3339(reply.body["expiresAt"].as_str().unwrap()).unwrap();
    let ttl = expires.timestamp_millis() - now_ms();
    assert!((595_000..=600_000).contains(&ttl), "a 10-minute link, {ttl} ms left");
    let url = reply.body["url"].as_str().unwrap();
    let file = reqwest::get(url).await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    let bytes = file.bytes().await.unwrap();
    let decoded = decode(&bytes);
    assert_eq!(decoded.duration_ms(), end_slot * 20, "the file lasts exactly the call");
    assert_tone(&decoded.left, decoded.rate, 440.0, (1_000, 3_000), TOLERANCE_MS);
    assert_tone(&decoded.right, decoded.rate, 1_000.0, (2_000, 4_500), TOLERANCE_MS);
    assert_no_tone(&decoded.left, decoded.rate, 1_000.0);
    assert_no_tone(&decoded.right, decoded.rate, 440.0);
    reply.body
}

/// Records the standard test call: caller 440 Hz from 1.0 to 3.0 s, agent 1 kHz from
/// 2.0 to 4.5 s, ended at 5.0 s (slot 250).
async fn record(app: &TestApp, company: CompanyId, call: CallId, answered_at: i64) {
    let tap = app.state.recordings.start(call, company, answered_at);
    feed(&tap, 240, 50..150, 100..225).await;
    tap.finish(EndInfo { end_slot: 250 });
    app.state.recordings.idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_has_the_caller_left_and_the_agent_right_at_their_times() {
    let app = spawn_app().await;
    let answered = now_ms() - 10_000;
    let (company, admin, call) = ended_call(&app, "Acme", answered).await;
    record(&app, company, call, answered).await;
    let link = check_recording(&app, &admin, call, 250).await;

    // The local link is the gateway's own, served with its type and ranges.
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/api/recordings/", app.base)), "{url}");
    let whole = reqwest::get(url).await.unwrap();
    assert_eq!(whole.headers()["content-type"], "audio/ogg");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let whole = whole.bytes().await.unwrap();
    let part = app.http.get(url).header("Range", "bytes=0-99").send().await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], format!("bytes 0-99/{}", whole.len()));
    assert_eq!(part.bytes().await.unwrap(), whole.slice(0..100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_goes_to_s3_compatible_storage_and_links_are_presigned() {
    let Some(s3) = LocalS3::start().await else {
        eprintln!("skipped: no local S3 server (run scripts/ensure-s3-server.sh)");
        return;
    };
    s3.create_bucket("calls").await;
    let endpoint = s3.endpoint().to_owned();
    let app = spawn_app_with(|args| {
        args.recordings_url = Some("s3://calls/recordings/test".into());
        args.recordings_endpoint = Some(endpoint.clone());
        args.recordings_allow_http = true;
        args.recordings_access_key_id = Some(testkit::local_s3::ACCESS_KEY_ID.into());
        args.recordings_secret_access_key = Some(testkit::local_s3::SECRET_ACCESS_KEY.into());
        args.recordings_region = Some("us-east-1".into());
    })
    .await;
    assert!(app.state.recordings.storage().is_s3());
    let answered = now_ms() - 10_000;
    let (company, admin, call) = ended_call(&app, "Acme", answered).await;
    record(&app, company, call, answered).await;
    let key = format!("recordings/test/{company}/{call}.ogg");
    let storage = app.state.recordings.storage().clone();
    let relative = format!("{company}/{call}.ogg");
    assert!(storage.read(&relative).await.is_ok(), "stored");
    let link = check_recording(&app, &admin, call, 250).await;
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{endpoint}/calls/{key}?")) && url.contains("X-Amz-Expires=600"), "{url}");
    assert!(spool_is_empty(&app), "nothing left on local disk");

    let deleted = app.delete(&format!("/api/company/calls/{call}"), &admin, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(
        matches!(storage.read(&relative).await, Err(object_store::Error::NotFound { .. })),
        "the object went with the call"
    );
    assert_eq!(reqwest::get(url).await.unwrap().status(), StatusCode::NOT_FOUND, "and its link leads nowhere");
}

fn spool_is_empty(app: &TestApp) -> bool {
    std::fs::read_dir(app.data_dir.path().join("recordings-spool")).unwrap().next().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_expire_refuse_tampering_and_other_companies_cannot_get_one() {
    let app = spawn_app().await;
    let answered = now_ms() - 10_000;
    let (company, admin, call) = ended_call(&app, "Acme", answered).await;
    let tap = app.state.recordings.start(call, company, answered);
    feed(&tap, 60, 10..40, 20..50).await;
    tap.finish(EndInfo { end_slot: 60 });
    app.state.recordings.idle().await;
    let recording = app.state.store.recording_for_call(company, call).await.unwrap().unwrap();

    // A link handed out eleven minutes ago has expired.
    let old = app.state.recordings.link(&recording, now_ms() - 11 * 60_000).await.unwrap();
    let reply = app.http.get(&old.url).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    assert_eq!(reply.json::<serde_json::Value>().await.unwrap()["error"]["code"], "link_expired");

    // Any change to a fresh link breaks it.
    let fresh = app.state.recordings.link(&recording, now_ms()).await.unwrap();
    assert_eq!(app.http.get(&fresh.url).send().await.unwrap().status(), StatusCode::OK);
    let (path, query) = fresh.url.split_once('?').unwrap();
    let expires: i64 = query.split('&').find_map(|p| p.strip_prefix("expires=")).unwrap().parse().unwrap();
    let signature = query.split('&').find_map(|p| p.strip_prefix("signature=")).unwrap();
    let mut flipped = signature.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let tampered = [
        format!("{path}?expires={}&signature={signature}", expires + 3600),
        format!("{path}?expires={expires}&signature={}", String::from_utf8(flipped).unwrap()),
        format!("{}/api/recordings/{}?{query}", app.base, gateway::ids::RecordingId::new()),
        format!("{path}?expires={expires}"),
        path.to_owned(),
        format!("{}/api/recordings/not-an-id?{query}", app.base),
    ];
    for url in tampered {
        let reply = app.http.get(&url).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{url}");
        assert_eq!(reply.json::<serde_json::Value>().await.unwrap()["error"]["code"], "invalid_link", "{url}");
    }

    // Another company's admin cannot get a link; a call without recording says so.
    let (_, other_admin) = app.company_with_admin("Globex", true).await;
    let reply = app.get(&format!("/api/company/calls/{call}/recording"), &other_admin, None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"));
    let chatbot = app.call_chatbot(company, &admin).await;
    let silent = new_call(&app, company, &chatbot).await;
    let reply = app.get(&format!("/api/company/calls/{silent}/recording"), &admin, None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "recording_not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_call_deletes_its_transcript_and_recording_but_never_a_live_call() {
    let app = spawn_app().await;
    let answered = now_ms() - 10_000;
    let (company, admin, call) = ended_call(&app, "Acme", answered).await;
    let tap = app.state.recordings.start(call, company, answered);
    feed(&tap, 30, 0..30, 0..30).await;
    tap.finish(EndInfo { end_slot: 30 });
    app.state.recordings.idle().await;
    let line =
        TranscriptLine { seq: 0, role: TranscriptRole::Agent, content: "Hello".into(), item_id: None, offset_ms: 0 };
    app.state.store.append_transcript(call, &line).await.unwrap();
    let recording = app.state.store.recording_for_call(company, call).await.unwrap().unwrap();
    let file = app.state.recordings.storage().local_path(&recording.object_key).unwrap();
    assert!(file.exists());
    let link = app.get(&format!("/api/company/calls/{call}/recording"), &admin, None).await;
    let url = link.body["url"].as_str().unwrap().to_owned();

    let (_, other_admin) = app.company_with_admin("Globex", true).await;
    let reply = app.delete(&format!("/api/company/calls/{call}"), &other_admin, None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "another company's call");
    assert!(file.exists(), "and nothing changed");

    let chatbot = app.call_chatbot(company, &admin).await;
    let live = new_call(&app, company, &chatbot).await;
    let reply = app.delete(&format!("/api/company/calls/{live}"), &admin, None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "call_not_ended"));

    let reply = app.delete(&format!("/api/company/calls/{call}"), &admin, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(!file.exists(), "the recording's file is gone");
    assert!(app.state.store.recording_for_call(company, call).await.unwrap().is_none());
    assert!(app.state.store.transcript(call).await.unwrap().is_empty());
    assert_eq!(app.get(&format!("/api/company/calls/{call}"), &admin, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND, "old links lead nowhere");
    assert_eq!(app.delete(&format!("/api/company/calls/{call}"), &admin, None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_recorded_once_even_if_started_twice() {
    let app = spawn_app().await;
    let answered = now_ms() - 10_000;
    let (company, admin, call) = ended_call(&app, "Acme", answered).await;
    let tap = app.state.recordings.start(call, company, answered);
    let again = app.state.recordings.start(call, company, answered);
    feed(&tap, 240, 50..150, 100..225).await;
    again.caller(0, &[0; 160], SampleRate::Hz8000);
    again.finish(EndInfo { end_slot: 10 });
    tap.finish(EndInfo { end_slot: 250 });
    app.state.recordings.idle().await;
    check_recording(&app, &admin, call, 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_dropped_without_an_end_still_leaves_a_playable_recording() {
    let app = spawn_app().await;
    let answered = now_ms() - 10_000;
    let (company, admin, call) = ended_call(&app, "Acme", answered).await;
    let tap = app.state.recordings.start(call, company, answered);
    feed(&tap, 240, 50..150, 100..225).await;
    drop(tap); // as when the session's task panics
    app.state.recordings.idle().await;
    let reply = app.get(&format!("/api/company/calls/{call}/recording"), &admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["durationMs"], 225 * 20, "up to the last frame seen");
    let bytes = reqwest::get(reply.body["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    let decoded = decode(&bytes);
    assert_tone(&decoded.left, decoded.rate, 440.0, (1_000, 3_000), TOLERANCE_MS);
    assert_tone(&decoded.right, decoded.rate, 1_000.0, (2_000, 4_500), TOLERANCE_MS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_short_by_a_crash_is_sealed_and_stored_at_the_next_start() {
    let app = spawn_app().await;
    let answered = now_ms() - 10_000;
    let (company, admin, call) = ended_call(&app, "Acme", answered).await;
    // What a writer had on disk when its process died: pages up to some point, the last
    // one half written, no end-of-stream page.
    let mut bytes = Vec::new();
    let mut encoder = media::RecordingEncoder::new(media::RecordingConfig::default(), 9, &[], &mut bytes).unwrap();
    let rate = SampleRate::Hz24000;
    let tone = sine(rate, 440.0, 0.5, 480 * 200);
    for slot in 0..200u64 {
        let s = slot as usize;
        encoder.push(media::Side::Left, slot, rate, &tone[s * 480..(s + 1) * 480], &mut bytes).unwrap();
    }
    bytes.truncate(bytes.len() - 100);
    let spool = app.data_dir.path().join("recordings-spool").join(format!("{company}.{call}.ogg.part"));
    std::fs::write(&spool, &bytes).unwrap();

    // The next start (same data, same storage) finds it.
    let recordings = std::sync::Arc::new(
        gateway::recording::Recordings::new(
            app.state.store.clone(),
            app.state.recordings.storage().clone(),
            gateway::recording::LinkSigner::new(std::sync::Arc::new(
                gateway::crypto::Sealer::from_key_list(&format!(
                    "k:{}",
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32])
                ))
                .unwrap(),
            )),
            app.base.clone().into(),
            app.data_dir.path().join("recordings-spool"),
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap(),
    );
    recordings.spawn_recovery();
    recordings.idle().await;
    assert!(spool_is_empty(&app), "stored and removed from the spool");
    let reply = app.get(&format!("/api/company/calls/{call}/recording"), &admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let stored = reqwest::get(reply.body["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    let decoded = decode(&stored);
    // Pages hold a second each and the fourth was still in memory: of the three on disk
    // the last is cut, so two seconds survive, less the encoder's look-ahead.
    assert!((1_950..2_000).contains(&decoded.duration_ms()), "{} ms", decoded.duration_ms());
    assert_tone(&decoded.left, decoded.rate, 440.0, (0, decoded.duration_ms()), TOLERANCE_MS);
}

#[tokio::test]
async fn the_retention_sweep_deletes_due_recordings_and_only_those() {
    let app = spawn_app().await;
    let now = now_ms();
    const DAY: i64 = 24 * 60 * 60 * 1000;
    let (acme, acme_admin, _) = ended_call(&app, "Acme", now - DAY).await;
    let (globex, _, _) = ended_call(&app, "Globex", now - DAY).await;
    // Acme keeps recordings a week; Globex keeps the default 90 days.
    let reply = app.patch("/api/company/recording-settings", &acme_admin, None, json!({"retentionDays": 7})).await;
    assert_eq!((reply.status, reply.body["retentionDays"].as_u64()), (StatusCode::OK, Some(7)), "{}", reply.text);
    let reply = app.patch("/api/company/recording-settings", &acme_admin, None, json!({"retentionDays": 0})).await;
    assert_eq!((reply.status, reply.field()), (StatusCode::UNPROCESSABLE_ENTITY, "retentionDays"));
    assert_eq!(app.get("/api/company/recording-settings", &acme_admin, None).await.body["retentionDays"], 7);
    let master = app
        .patch(
            &format!("/api/admin/companies/{globex}/settings"),
            &app.master,
            None,
            json!({"recordings": {"retentionDays": 3651}}),
        )
        .await;
    assert_eq!((master.status, master.field()), (StatusCode::UNPROCESSABLE_ENTITY, "recordings.retentionDays"));
    let company = app.get("/api/admin/companies", &app.master, None).await;
    let globex_view = company.body.as_array().unwrap().iter().find(|c| c["id"] == globex.to_string()).unwrap().clone();
    assert_eq!(globex_view["settings"]["recordings"]["retentionDays"], 90, "unchanged, and the default");

    let storage = app.state.recordings.storage().clone();
    let spool = app.data_dir.path().join("file.ogg");
    std::fs::write(&spool, b"OggS").unwrap();
    let mut stored = Vec::new();
    for (company, age_days) in [(acme, 8), (acme, 6), (globex, 91), (globex, 30)] {
        let (admin_company, chatbot) = (company, chatbot_of(&app, company).await);
        let call = new_call(&app, admin_company, &chatbot).await;
        app.state.store.end_call(call, EndReason::CallerHangup, now, None).await.unwrap();
        let key = format!("{company}/{call}.ogg");
        storage.put_file(&key, &spool).await.unwrap();
        let row = NewRecording {
            call_id: call,
            company_id: company,
            object_key: key.clone(),
            duration_ms: 1_000,
            bytes: 4,
            created_at: now - age_days * DAY,
        };
        app.state.store.insert_recording(&row).await.unwrap();
        stored.push((company, call, key, age_days));
    }
    let report = app.state.recordings.sweep_retention(now).await.unwrap();
    assert_eq!((report.deleted, report.failed), (2, 0));
    for (company, call, key, age_days) in stored {
        let due = (company == acme && age_days > 7) || (company == globex && age_days > 90);
        let kept = app.state.store.recording_for_call(company, call).await.unwrap().is_some();
        assert_eq!(kept, !due, "{age_days}-day-old recording");
        assert_eq!(storage.local_path(&key).unwrap().exists(), !due, "{age_days}-day-old file");
    }
    assert_eq!(app.state.recordings.sweep_retention(now).await.unwrap().deleted, 0, "nothing left to do");
}

/// The id of a company's (only) chatbot.
async fn chatbot_of(app: &TestApp, company: CompanyId) -> String {
    let bots = app.get("/api/company/chatbots", &app.master, Some(company)).await;
    bots.body[0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn transcripts_download_as_text_or_json_attachments() {
    let app = spawn_app().await;
    let (_, admin, call) = ended_call(&app, "Acme", now_ms() - 60_000).await;
    for (seq, role, text, offset) in [
        (0, TranscriptRole::Agent, "This call may be recorded. Hi!", 400),
        (1, TranscriptRole::User, "Where is my order?\nIt's late.", 3_250),
        (2, TranscriptRole::System, "search_knowledge_base(order status)", 3_900),
    ] {
        let line = TranscriptLine { seq, role, content: text.into(), item_id: None, offset_ms: offset };
        app.state.store.append_transcript(call, &line).await.unwrap();
    }
    let download = |format: &'static str| {
        let url = format!("{}/api/company/calls/{call}/transcript{format}", app.base);
        app.http.get(url).bearer_auth(&admin).send()
    };
    let txt = download("?format=txt").await.unwrap();
    assert_eq!(txt.status(), StatusCode::OK);
    assert_eq!(txt.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        txt.headers()["content-disposition"],
        format!("attachment; filename=\"call-{call}-transcript.txt\"").as_str()
    );
    assert_eq!(
        txt.text().await.unwrap(),
        "[00:00:00.400] agent: This call may be recorded. Hi!\n\
         [00:00:03.250] user: Where is my order? It's late.\n\
         [00:00:03.900] system: search_knowledge_base(order status)\n"
    );

    let json = download("?format=json").await.unwrap();
    assert_eq!(json.headers()["content-type"], "application/json");
    assert_eq!(
        json.headers()["content-disposition"],
        format!("attachment; filename=\"call-{call}-transcript.json\"").as_str()
    );
    let body: serde_json::Value = json.json().await.unwrap();
    assert_eq!(body["callId"], call.to_string());
    assert_eq!(
        body["lines"][1],
        json!({"seq": 1, "role": "user", "text": "Where is my order?\nIt's late.", "offsetMs": 3250})
    );
    assert_eq!(body["lines"].as_array().unwrap().len(), 3);
    assert_eq!(download("").await.unwrap().headers()["content-type"], "application/json", "JSON by default");

    let bad = app.get(&format!("/api/company/calls/{call}/transcript?format=pdf"), &admin, None).await;
    assert_eq!((bad.status, bad.code(), bad.field()), (StatusCode::BAD_REQUEST, "invalid_format", "format"));
    let (_, other_admin) = app.company_with_admin("Globex", true).await;
    let other = app.get(&format!("/api/company/calls/{call}/transcript?format=txt"), &other_admin, None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_recording_routes_are_documented() {
    let app = spawn_app().await;
    let doc = app.get("/api/openapi.json", "", None).await;
    for (path, method) in [
        ("/api/company/calls/{id}", "delete"),
        ("/api/company/calls/{id}/transcript", "get"),
        ("/api/company/calls/{id}/recording", "get"),
        ("/api/recordings/{id}", "get"),
        ("/api/company/recording-settings", "patch"),
    ] {
        assert!(doc.body["paths"][path].get(method).is_some(), "{method} {path} documented");
    }
}

#[tokio::test]
async fn the_recording_notice_is_a_call_setting_on_by_default() {
    let app = spawn_app().await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let path = format!("/api/company/chatbots/{bot}/call-settings");
    let settings = app.get(&path, &admin, None).await;
    assert_eq!(settings.body["recordingNotice"], "This call may be recorded.");
    assert_eq!(settings.body["recordingNoticeEnabled"], true);
    assert_eq!(settings.body["callRecording"], false);
    let patched =
        app.patch(&path, &admin, None, json!({"recordingEnabled": true, "recordingNotice": "We record calls."})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        (patched.body["callRecording"].as_bool(), patched.body["recordingNotice"].as_str()),
        (Some(true), Some("We record calls."))
    );
    let chatbot = app.state.store.chatbot(company, bot.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(chatbot.settings.call.recording_notice(), Some("We record calls."));
    let blank = app.patch(&path, &admin, None, json!({"recordingNotice": "  "})).await;
    assert_eq!((blank.status, blank.field()), (StatusCode::UNPROCESSABLE_ENTITY, "recordingNotice"));
    let long = app.patch(&path, &admin, None, json!({"recordingNotice": "x".repeat(301)})).await;
    assert_eq!((long.status, long.field()), (StatusCode::UNPROCESSABLE_ENTITY, "recordingNotice"));
}
