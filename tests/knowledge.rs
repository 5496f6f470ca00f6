//! The knowledge-base API against a real gateway (spawn_app): categories, documents,
//! chatbot links and search, tenant isolation, validation and the upload body limit.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use gateway::ids::CompanyId;
use gateway::knowledge::{DatabaseSearch, KnowledgeSearch};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const STORE_FAQ: &str = "# Store FAQ\n\n\
    ## Business hours\n\nWe're open Monday-Friday, 9 AM - 5 PM. We are closed on public holidays.\n\n\
    ## Shipping\n\nWe ship to the US and Canada. Orders placed before noon leave the warehouse the same day.\n\n\
    ## Returns\n\nYou can return any item within 30 days for a full refund.\n";

const CATEGORIES: &str = "/api/company/knowledge/categories";

impl TestApp {
    async fn put(&self, path: &str, token: &str, company: Option<CompanyId>, body: Value) -> Reply {
        self.call(Method::PUT, path, token, company, Some(body)).await
    }

    /// Creates a category; returns its id.
    async fn category(&self, admin: &str, name: &str) -> String {
        let reply = self.post(CATEGORIES, admin, None, json!({"name": name})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Uploads a markdown document; returns its id.
    async fn document(&self, admin: &str, category: &str, title: &str, content: &str) -> String {
        let reply = self
            .post(
                &format!("{CATEGORIES}/{category}/documents"),
                admin,
                None,
                json!({"title": title, "content": content, "contentType": "text/markdown"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// A chat chatbot; returns its id.
    async fn chat_chatbot(&self, admin: &str) -> String {
        let reply = self.post("/api/company/chatbots", admin, None, json!({"name": "Helper"})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    async fn search(&self, admin: &str, chatbot: &str, query: &str) -> Reply {
        let q = url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>();
        self.get(&format!("/api/company/chatbots/{chatbot}/knowledge/search?q={q}"), admin, None).await
    }
}

fn contents(reply: &Reply) -> Vec<String> {
    reply.body["results"].as_array().unwrap().iter().map(|r| r["content"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn categories_and_documents_are_created_listed_read_and_deleted() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", false).await;
    let created =
        app.post(CATEGORIES, &admin, None, json!({"name": " FAQ ", "description": "Customer questions"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!((created.body["name"].as_str(), created.body["documentCount"].as_i64()), (Some("FAQ"), Some(0)));
    let faq = created.body["id"].as_str().unwrap().to_owned();
    let dup = app.post(CATEGORIES, &admin, None, json!({"name": "FAQ"})).await;
    assert_eq!((dup.status, dup.code(), dup.field()), (StatusCode::CONFLICT, "already_exists", "name"));
    app.category(&admin, "Billing").await;
    let list = app.get(CATEGORIES, &admin, None).await;
    let names: Vec<&str> = list.body.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Billing", "FAQ"]);

    let uploaded = app
        .post(
            &format!("{CATEGORIES}/{faq}/documents"),
            &admin,
            None,
            json!({"title": "Store FAQ", "content": STORE_FAQ, "contentType": "text/markdown"}),
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.text);
    assert_eq!(uploaded.body["contentType"], "text/markdown");
    assert_eq!(uploaded.body["chunkCount"], 3, "one passage per section: {}", uploaded.text);
    assert!(uploaded.body.get("content").is_none(), "the upload is not echoed back");
    let doc = uploaded.body["id"].as_str().unwrap().to_owned();
    let plain = app
        .post(&format!("{CATEGORIES}/{faq}/documents"), &admin, None, json!({"title": "Note", "content": "Plain."}))
        .await;
    assert_eq!((plain.status, plain.body["contentType"].as_str()), (StatusCode::CREATED, Some("text/plain")));

    let docs = app.get(&format!("{CATEGORIES}/{faq}/documents"), &admin, None).await;
    assert_eq!(docs.body.as_array().unwrap().len(), 2);
    assert_eq!(docs.body[0]["title"], "Store FAQ");
    assert_eq!(docs.body[0]["contentChars"], STORE_FAQ.chars().count());
    let one = app.get(&format!("/api/company/knowledge/documents/{doc}"), &admin, None).await;
    assert_eq!((one.status, one.body["content"].as_str()), (StatusCode::OK, Some(STORE_FAQ)));
    assert_eq!(one.body["categoryId"], faq.as_str());
    let category = app.get(&format!("{CATEGORIES}/{faq}"), &admin, None).await;
    assert_eq!(category.body["documentCount"], 2);

    let deleted = app.delete(&format!("/api/company/knowledge/documents/{doc}"), &admin, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.get(&format!("/api/company/knowledge/documents/{doc}"), &admin, None).await;
    assert_eq!((gone.status, gone.code()), (StatusCode::NOT_FOUND, "not_found"));
    let again = app.delete(&format!("/api/company/knowledge/documents/{doc}"), &admin, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let deleted = app.delete(&format!("{CATEGORIES}/{faq}"), &admin, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("{CATEGORIES}/{faq}/documents"), &admin, None).await.status, StatusCode::NOT_FOUND);
    let plain_id = plain.body["id"].as_str().unwrap();
    let orphan = app.get(&format!("/api/company/knowledge/documents/{plain_id}"), &admin, None).await;
    assert_eq!(orphan.status, StatusCode::NOT_FOUND, "a category's documents go with it");
    assert_eq!(app.get(CATEGORIES, &admin, None).await.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_uploaded_markdown_document_is_found_by_the_agents_search() {
    let app = spawn_app().await;
    let (company, admin) = app.company_with_admin("Acme", true).await;
    let bot = app.call_chatbot(company, &admin).await;
    let faq = app.category(&admin, "FAQ").await;
    let doc = app.document(&admin, &faq, "Store FAQ", STORE_FAQ).await;
    let linked = app
        .put(&format!("/api/company/chatbots/{bot}/knowledge-categories"), &admin, None, json!({"categoryIds": [faq]}))
        .await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.text);
    assert_eq!(linked.body["categoryIds"], json!([faq]));
    assert_eq!(linked.body["categories"][0]["name"], "FAQ");

    for query in ["What are your business hours?", "when are you open"] {
        let found = app.search(&admin, &bot, query).await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.text);
        assert_eq!(found.body["query"], query);
        let first = &found.body["results"][0];
        assert_eq!(
            first["content"],
            "Store FAQ > Business hours\nWe're open Monday-Friday, 9 AM - 5 PM. We are closed on public holidays."
        );
        assert_eq!((first["documentId"].as_str(), first["title"].as_str()), (Some(doc.as_str()), Some("Store FAQ")));
        assert!(first["score"].as_f64().unwrap() > 0.0);
    }
    let refund = app.search(&admin, &bot, "can I get my money back? refund").await;
    assert!(contents(&refund)[0].contains("full refund"), "{}", refund.text);
    let limited = app
        .get(&format!("/api/company/chatbots/{bot}/knowledge/search?q=we+ship+open+refund&limit=1"), &admin, None)
        .await;
    assert_eq!(limited.body["results"].as_array().unwrap().len(), 1);
    let nothing = app.search(&admin, &bot, "\"*\" OR NEAR -").await;
    assert_eq!((nothing.status, nothing.body["results"].as_array().unwrap().len()), (StatusCode::OK, 0));

    // The call session runs the same search through the trait and hands the tool this.
    let company_id = company;
    let search = DatabaseSearch::new(app.state.store.clone());
    let passages = search.search(company_id, bot.parse().unwrap(), "business hours", 5).await.unwrap();
    let output: Value = serde_json::from_str(&gateway::knowledge::tool_output(&passages)).unwrap();
    assert!(output["results"][0]["content"].as_str().unwrap().contains("We're open Monday-Friday, 9 AM - 5 PM"));
    let none = search.search(company_id, bot.parse().unwrap(), "helicopter", 5).await.unwrap();
    assert_eq!(gateway::knowledge::tool_output(&none), r#"{"results":[],"note":"nothing found"}"#);

    // Deleting the document takes it out of the search at once.
    app.delete(&format!("/api/company/knowledge/documents/{doc}"), &admin, None).await;
    assert!(contents(&app.search(&admin, &bot, "business hours").await).is_empty());
}

#[tokio::test]
async fn a_chatbot_only_searches_its_linked_categories() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", false).await;
    let support = app.chat_chatbot(&admin).await;
    let faq = app.category(&admin, "FAQ").await;
    let internal = app.category(&admin, "Internal").await;
    app.document(&admin, &faq, "Hours", "## Business hours\n\nWe're open Monday-Friday, 9 AM - 5 PM.").await;
    app.document(&admin, &internal, "Staff rota", "## Staff hours\n\nStaff business hours start at 7 AM.").await;
    let path = format!("/api/company/chatbots/{support}/knowledge-categories");

    let unlinked = app.get(&path, &admin, None).await;
    assert_eq!(unlinked.body["categoryIds"], json!([]));
    assert!(
        contents(&app.search(&admin, &support, "business hours").await).is_empty(),
        "nothing linked, nothing found"
    );

    app.put(&path, &admin, None, json!({"categoryIds": [faq]})).await;
    let found = contents(&app.search(&admin, &support, "business hours").await);
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("Monday-Friday"));

    let both = app.put(&path, &admin, None, json!({"categoryIds": [internal, faq, faq]})).await;
    assert_eq!(both.body["categoryIds"].as_array().unwrap().len(), 2, "duplicates collapse");
    assert_eq!(contents(&app.search(&admin, &support, "business hours").await).len(), 2);

    app.delete(&format!("{CATEGORIES}/{internal}"), &admin, None).await;
    assert_eq!(app.get(&path, &admin, None).await.body["categoryIds"], json!([faq]), "deleting a category unlinks it");
    let cleared = app.put(&path, &admin, None, json!({"categoryIds": []})).await;
    assert_eq!(cleared.body["categoryIds"], json!([]));
    assert!(contents(&app.search(&admin, &support, "business hours").await).is_empty());
}

#[tokio::test]
async fn another_companys_knowledge_answers_404_and_cannot_be_linked() {
    let app = spawn_app().await;
    let (acme, acme_admin) = app.company_with_admin("Acme", false).await;
    let (globex, globex_admin) = app.company_with_admin("Globex", false).await;
    let acme_bot = app.chat_chatbot(&acme_admin).await;
    let globex_bot = app.chat_chatbot(&globex_admin).await;
    let faq = app.category(&acme_admin, "FAQ").await;
    let doc = app.document(&acme_admin, &faq, "Store FAQ", STORE_FAQ).await;
    app.put(
        &format!("/api/company/chatbots/{acme_bot}/knowledge-categories"),
        &acme_admin,
        None,
        json!({"categoryIds": [faq]}),
    )
    .await;

    for path in [
        format!("{CATEGORIES}/{faq}"),
        format!("{CATEGORIES}/{faq}/documents"),
        format!("/api/company/knowledge/documents/{doc}"),
        format!("/api/company/chatbots/{acme_bot}/knowledge-categories"),
        format!("/api/company/chatbots/{acme_bot}/knowledge/search?q=hours"),
    ] {
        let reply = app.get(&path, &globex_admin, None).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"), "{path}");
        let reply = app.get(&path, &app.master, Some(globex)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path} as master in the wrong company");
    }
    for path in [format!("{CATEGORIES}/{faq}"), format!("/api/company/knowledge/documents/{doc}")] {
        assert_eq!(app.delete(&path, &globex_admin, None).await.status, StatusCode::NOT_FOUND, "DELETE {path}");
    }
    let upload = app
        .post(&format!("{CATEGORIES}/{faq}/documents"), &globex_admin, None, json!({"title": "x", "content": "y"}))
        .await;
    assert_eq!(upload.status, StatusCode::NOT_FOUND);
    let relink = app
        .put(
            &format!("/api/company/chatbots/{acme_bot}/knowledge-categories"),
            &globex_admin,
            None,
            json!({"categoryIds": []}),
        )
        .await;
    assert_eq!(relink.status, StatusCode::NOT_FOUND);
    let borrow = app
        .put(
            &format!("/api/company/chatbots/{globex_bot}/knowledge-categories"),
            &globex_admin,
            None,
            json!({"categoryIds": [faq]}),
        )
        .await;
    assert_eq!((borrow.status, borrow.field()), (StatusCode::UNPROCESSABLE_ENTITY, "categoryIds"));
    assert!(app.get(CATEGORIES, &globex_admin, None).await.body.as_array().unwrap().is_empty());

    // Acme's knowledge is untouched, and a master admin naming Acme sees it.
    let found = app.search(&acme_admin, &acme_bot, "business hours").await;
    assert!(contents(&found)[0].contains("Monday-Friday"));
    let as_master = app.get(&format!("{CATEGORIES}/{faq}/documents"), &app.master, Some(acme)).await;
    assert_eq!(as_master.body.as_array().unwrap().len(), 1);
    // Support agents configure nothing.
    let agent = app.user_token("agent@acme.test", gateway::store::Role::SupportAgent, &[acme]).await;
    assert_eq!(app.get(CATEGORIES, &agent, None).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_input_is_refused_with_its_field_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", false).await;
    let bot = app.chat_chatbot(&admin).await;
    let faq = app.category(&admin, "FAQ").await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": "a\nb"}), "name"),
        (json!({"name": "Ok", "description": "d".repeat(2001)}), "description"),
        (json!({"name": "Ok", "colour": "red"}), "colour"),
        (json!({"name": 5}), "name"),
        (json!({}), ""),
    ] {
        let reply = app.post(CATEGORIES, &admin, None, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text);
        assert_eq!(reply.field(), field, "{body}");
    }
    assert_eq!(app.get(CATEGORIES, &admin, None).await.body.as_array().unwrap().len(), 1);

    let upload = format!("{CATEGORIES}/{faq}/documents");
    for (body, field) in [
        (json!({"title": "", "content": "text"}), "title"),
        (json!({"title": "x".repeat(301), "content": "text"}), "title"),
        (json!({"title": "T", "content": "  \n "}), "content"),
        (json!({"title": "T", "content": "nul\u{0}here"}), "content"),
        (json!({"title": "T", "content": "text", "contentType": "text/html"}), "contentType"),
        (json!({"title": "T", "content": "text", "contentType": "application/pdf"}), "contentType"),
        (json!({"title": "T"}), ""),
        (json!({"title": "T", "content": "text", "tags": []}), "tags"),
    ] {
        let reply = app.post(&upload, &admin, None, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text);
        assert_eq!(reply.field(), field, "{body}");
    }
    assert!(app.get(&upload, &admin, None).await.body.as_array().unwrap().is_empty(), "nothing was stored");
    let unknown_category = app
        .post(
            &format!("{CATEGORIES}/{}/documents", CompanyId::new()),
            &admin,
            None,
            json!({"title": "T", "content": "x"}),
        )
        .await;
    assert_eq!(unknown_category.status, StatusCode::NOT_FOUND);
    let malformed = app.get(&format!("{CATEGORIES}/not-an-id/documents"), &admin, None).await;
    assert_eq!(malformed.status, StatusCode::NOT_FOUND);

    let links = format!("/api/company/chatbots/{bot}/knowledge-categories");
    app.put(&links, &admin, None, json!({"categoryIds": [faq]})).await;
    let too_many: Vec<String> = (0..101).map(|_| faq.clone()).collect();
    for body in [
        json!({"categoryIds": ["not-a-uuid"]}),
        json!({"categoryIds": [faq, CompanyId::new().to_string()]}),
        json!({"categoryIds": [bot]}),
        json!({"categoryIds": too_many}),
        json!({"categoryIds": "all"}),
        json!({"categoryIds": [1]}),
    ] {
        let reply = app.put(&links, &admin, None, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text);
        assert!(reply.field().starts_with("categoryIds"), "{body}: {}", reply.text);
    }
    let missing = app.put(&links, &admin, None, json!({})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get(&links, &admin, None).await.body["categoryIds"],
        json!([faq]),
        "refused changes changed nothing"
    );

    let search = format!("/api/company/chatbots/{bot}/knowledge/search");
    for (query, field) in [
        ("".to_owned(), "q"),
        ("?q=".to_owned(), "q"),
        ("?q=%20".to_owned(), "q"),
        (format!("?q={}", "a".repeat(501)), "q"),
        ("?q=hours&limit=0".to_owned(), "limit"),
        ("?q=hours&limit=100".to_owned(), "limit"),
        ("?q=hours&sort=score".to_owned(), "sort"),
    ] {
        let reply = app.get(&format!("{search}{query}"), &admin, None).await;
        assert_eq!((reply.status, reply.field()), (StatusCode::UNPROCESSABLE_ENTITY, field), "{query}: {}", reply.text);
        assert_eq!(reply.code(), "invalid_value");
    }
    let unknown_bot =
        app.get(&format!("/api/company/chatbots/{}/knowledge/search?q=x", CompanyId::new()), &admin, None).await;
    assert_eq!(unknown_bot.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn documents_may_be_larger_than_other_bodies_but_have_a_limit() {
    let app = spawn_app().await;
    let (_, admin) = app.company_with_admin("Acme", false).await;
    let bot = app.chat_chatbot(&admin).await;
    let faq = app.category(&admin, "FAQ").await;
    app.put(&format!("/api/company/chatbots/{bot}/knowledge-categories"), &admin, None, json!({"categoryIds": [faq]}))
        .await;
    let upload = format!("{CATEGORIES}/{faq}/documents");

    // 200 KB: over the API-wide 64 KiB, within the upload route's limit.
    let big: String = (0..2000)
        .map(|i| format!("## Topic {i}\n\nParagraph {i} about widget{i}. {}\n\n", "More. ".repeat(10)))
        .collect();
    assert!(big.len() > 150_000);
    let stored = app
        .post(&upload, &admin, None, json!({"title": "Manual", "content": big, "contentType": "text/markdown"}))
        .await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text);
    assert_eq!(stored.body["chunkCount"], 2000);
    let found = contents(&app.search(&admin, &bot, "widget1234").await);
    assert!(found[0].starts_with("Topic 1234\nParagraph 1234"), "{found:?}");

    // Text over 512 KiB in a body under 1 MiB: the document limit, named.
    let too_long = "a".repeat(600 * 1024);
    let refused = app.post(&upload, &admin, None, json!({"title": "Huge", "content": too_long})).await;
    assert_eq!(
        (refused.status, refused.code(), refused.field()),
        (StatusCode::PAYLOAD_TOO_LARGE, "document_too_large", "content")
    );

    // A body over 1 MiB never reaches the handler.
    let huge = "a".repeat(1100 * 1024);
    let refused = app.post(&upload, &admin, None, json!({"title": "Huge", "content": huge})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"));

    // Other routes keep the 64 KiB limit.
    let long_name = app.post(CATEGORIES, &admin, None, json!({"name": "x", "description": "d".repeat(100_000)})).await;
    assert_eq!((long_name.status, long_name.code()), (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"));
    assert_eq!(app.get(&upload, &admin, None).await.body.as_array().unwrap().len(), 1, "only the manual was stored");
}

#[tokio::test]
async fn the_knowledge_routes_are_documented() {
    let app = spawn_app().await;
    let doc = app.get("/api/openapi.json", "", None).await;
    for path in [
        "/api/company/knowledge/categories",
        "/api/company/knowledge/categories/{id}",
        "/api/company/knowledge/categories/{id}/documents",
        "/api/company/knowledge/documents/{id}",
        "/api/company/chatbots/{id}/knowledge-categories",
        "/api/company/chatbots/{id}/knowledge/search",
    ] {
        assert!(doc.body["paths"].get(path).is_some(), "{path} documented");
    }
}
