//! The cost of the portable store: the same queries through sqlx's `Any` driver (what the
//! gateway uses, so one set of SQL runs on SQLite and Postgres) and through the native
//! SQLite driver. Results are in docs/database.md.

use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::Row;

const SELECT: &str = "SELECT id, company_id, name, description, chatbot_type, call_model_id, instructions, settings, created_at, updated_at \
                      FROM chatbots WHERE id = $1 AND company_id = $2";
const INSERT: &str = "INSERT INTO call_transcripts (id, call_id, seq, role, content, item_id, offset_ms, created_at) \
                      VALUES ($1, $2, $3, 'user', 'What are your business hours?', NULL, $4, $5)";

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let (any, native, bot, company, call) = runtime.block_on(async {
        let store = gateway::store::Store::connect(&url, 1).await.expect("store");
        let company = store.create_company("Bench", &Default::default()).await.expect("company");
        let bot = store
            .create_chatbot(
                company.id,
                gateway::store::NewChatbot {
                    name: "Voice".into(),
                    description: String::new(),
                    chatbot_type: gateway::store::ChatbotType::Call,
                    call_model_id: None,
                    instructions: String::new(),
                    settings: Default::default(),
                },
            )
            .await
            .expect("chatbot");
        let call = store
            .create_call(gateway::store::NewCall {
                company_id: company.id,
                chatbot_id: bot.id,
                source: gateway::store::CallSource::Web,
                is_test: false,
                caller: None,
                provider: "echo".into(),
                model_id: "echo".into(),
                node_id: "bench".into(),
                token_hash: None,
                token_expires_at: None,
                integration_account_id: None,
                external_id: None,
            })
            .await
            .expect("call");
        store.close().await;
        let any = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("any pool");
        let native =
            sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&url).await.expect("native pool");
        (any, native, bot.id.to_string(), company.id.to_string(), call.id.to_string())
    });

    let mut group = c.benchmark_group("store");
    group.bench_function("select_chatbot/any", |b| {
        b.to_async(&runtime).iter(|| async {
            let row = sqlx::query(SELECT).bind(&bot).bind(&company).fetch_one(&any).await.expect("row");
            row.try_get::<String, _>("settings").expect("settings")
        })
    });
    group.bench_function("select_chatbot/native_sqlite", |b| {
        b.to_async(&runtime).iter(|| async {
            let row = sqlx::query(SELECT).bind(&bot).bind(&company).fetch_one(&native).await.expect("row");
            row.try_get::<String, _>("settings").expect("settings")
        })
    });
    let mut seq = 0i64;
    group.bench_function("insert_transcript_line/any", |b| {
        b.to_async(&runtime).iter(|| {
            seq += 1;
            let (any, call) = (&any, &call);
            async move {
                sqlx::query(INSERT)
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(call)
                    .bind(seq)
                    .bind(seq)
                    .bind(seq)
                    .execute(any)
                    .await
                    .expect("insert")
            }
        })
    });
    group.bench_function("insert_transcript_line/native_sqlite", |b| {
        b.to_async(&runtime).iter(|| {
            seq += 1;
            let (native, call) = (&native, &call);
            async move {
                sqlx::query(INSERT)
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(call)
                    .bind(seq)
                    .bind(seq)
                    .bind(seq)
                    .execute(native)
                    .await
                    .expect("insert")
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
