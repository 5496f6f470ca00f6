// Knowledge base (company admins): categories, their documents (write, upload a markdown
// or text file, delete), and a search box that runs the agent's own search for a chatbot
// (`GET /api/company/chatbots/{id}/knowledge/search`), so admins see what a question finds.

import { h, field, readForm, showError, formError, button, screenHeader, section, table, confirmAction, announce, errorText, dateTime } from '../ui.js';
import { contentTypeFor, titleFromFile } from '../logic.js';

/** The API takes up to 512 KiB of text per document. */
const MAX_DOCUMENT_BYTES = 512 * 1024;

export async function render(ctx) {
  const categoriesBox = h('div');
  const documentsBox = h('div');
  let categories = [];
  let selected = new URLSearchParams(ctx.search).get('category');

  async function loadCategories() {
    categories = await ctx.api.get('/api/company/knowledge/categories');
    if (!categories.some((c) => c.id === selected)) selected = categories[0]?.id ?? null;
    categoriesBox.replaceChildren(
      table({
        caption: 'Categories',
        hideCaption: true,
        columns: ['Category', 'Documents', ''],
        rows: categories.map((c) => [
          button(c.name, () => choose(c.id), c.id === selected ? 'small primary' : 'small', { 'aria-pressed': String(c.id === selected), 'aria-label': `Show the documents of ${c.name}` }),
          String(c.documentCount),
          button('Delete', () => removeCategory(c), 'small danger', { 'aria-label': `Delete category ${c.name}` }),
        ]),
        empty: 'No categories yet.',
      }),
    );
    await loadDocuments();
  }

  function choose(id) {
    selected = id;
    history.replaceState(null, '', `/admin/knowledge?category=${encodeURIComponent(id)}`);
    loadCategories();
  }

  async function removeCategory(category) {
    const ok = await confirmAction({ title: `Delete ${category.name}?`, message: `Its ${category.documentCount} document(s) are deleted too, and chatbots stop searching it.` });
    if (!ok) return;
    try {
      await ctx.api.delete(`/api/company/knowledge/categories/${category.id}`);
      announce(`Category ${category.name} deleted.`);
      await loadCategories();
    } catch (err) {
      announce(errorText(err), 'error');
    }
  }

  async function loadDocuments() {
    const category = categories.find((c) => c.id === selected);
    if (!category) return documentsBox.replaceChildren(h('p', { class: 'empty', text: 'Create a category to add documents to it.' }));
    const documents = await ctx.api.get(`/api/company/knowledge/categories/${category.id}/documents`);
    if (!ctx.current()) return;
    documentsBox.replaceChildren(
      section(
        `Documents in ${category.name}`,
        category.description ? h('p', { class: 'muted', text: category.description }) : null,
        table({
          caption: `Documents in ${category.name}`,
          hideCaption: true,
          columns: ['Title', 'Document', 'Added', ''],
          rows: documents.map((d) => [
            h('strong', { text: d.title }),
            `${d.contentType === 'text/markdown' ? 'Markdown' : 'Text'}, ${d.contentChars.toLocaleString()} characters in ${d.chunkCount} passage${d.chunkCount === 1 ? '' : 's'}`,
            dateTime(d.createdAt),
            button('Delete', () => removeDocument(d), 'small danger', { 'aria-label': `Delete document ${d.title}` }),
          ]),
          empty: 'No documents in this category yet.',
        }),
      ),
      section(`Add a document to ${category.name}`, documentForm(category)),
    );
  }

  async function removeDocument(doc) {
    const ok = await confirmAction({ title: `Delete ${doc.title}?`, message: 'The agent stops finding it at once.' });
    if (!ok) return;
    try {
      await ctx.api.delete(`/api/company/knowledge/documents/${doc.id}`);
      announce(`${doc.title} deleted.`);
      await loadCategories();
    } catch (err) {
      announce(errorText(err), 'error');
    }
  }

  function documentForm(category) {
    const file = field({ label: 'Upload a file (optional)', name: 'file', kind: 'file', hint: 'A markdown (.md) or text (.txt) file, up to 512 KB: it fills the fields below.', attrs: { accept: '.md,.markdown,.txt,text/plain,text/markdown' } });
    file.control.removeAttribute('data-type');
    const title = field({ label: 'Title', name: 'title', attrs: { maxlength: 300 } });
    const type = field({ label: 'Format', name: 'contentType', kind: 'select', options: [['text/markdown', 'Markdown (split along its # headings)'], ['text/plain', 'Plain text']], value: 'text/markdown' });
    const content = field({ label: 'Content', name: 'content', kind: 'textarea', attrs: { rows: 10 } });
    const error = formError();
    const form = h('form', { novalidate: true }, file.row, title.row, type.row, content.row, error, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', text: 'Add document' })));
    file.control.addEventListener('change', async () => {
      const chosen = file.control.files?.[0];
      if (!chosen) return;
      if (chosen.size > MAX_DOCUMENT_BYTES) {
        return showError(form, { field: 'file', message: `${chosen.name} is larger than 512 KB`, code: 'document_too_large' });
      }
      content.control.value = await chosen.text();
      type.control.value = contentTypeFor(chosen.name);
      if (!title.control.value.trim()) title.control.value = titleFromFile(chosen.name);
      announce(`${chosen.name} loaded: check the title and add it.`);
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const doc = await ctx.api.post(`/api/company/knowledge/categories/${category.id}/documents`, readForm(form));
        announce(`${doc.title} added: ${doc.chunkCount} passage${doc.chunkCount === 1 ? '' : 's'}.`);
        await loadCategories();
      } catch (err) {
        showError(form, err);
      }
    });
    return form;
  }

  // New category
  const name = field({ label: 'Name', name: 'name', attrs: { maxlength: 200, autocomplete: 'off' } });
  const description = field({ label: 'Description (optional)', name: 'description', attrs: { maxlength: 1000 } });
  const createError = formError();
  const create = h('form', { novalidate: true }, name.row, description.row, createError, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', text: 'Create category' })));
  create.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const category = await ctx.api.post('/api/company/knowledge/categories', readForm(create));
      name.control.value = '';
      description.control.value = '';
      announce(`Category ${category.name} created.`);
      choose(category.id);
    } catch (err) {
      showError(create, err);
    }
  });

  // Search as the agent would
  const bots = (await ctx.api.get('/api/company/chatbots')).filter((b) => b.chatbotType === 'call');
  const searchBot = field({ label: 'Chatbot', name: 'chatbot', kind: 'select', options: bots.map((b) => [b.id, b.name]), hint: 'The search covers the categories linked to this chatbot (Chatbots → Call Options).' });
  const query = field({ label: 'Question', name: 'q', kind: 'search', attrs: { maxlength: 500, placeholder: 'What are your business hours?' } });
  const found = h('div', { 'aria-live': 'polite' });
  const searchError = formError();
  const search = h('form', { role: 'search', 'aria-label': 'Search the knowledge base', novalidate: true }, searchBot.row, query.row, searchError, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary', text: 'Search' })), found);
  search.addEventListener('submit', async (event) => {
    event.preventDefault();
    const { chatbot, q } = readForm(search);
    if (!chatbot) return showError(search, { field: 'chatbot', message: 'choose a call chatbot', code: 'invalid_value' });
    try {
      const answer = await ctx.api.get(`/api/company/chatbots/${encodeURIComponent(chatbot)}/knowledge/search?q=${encodeURIComponent(q)}`);
      found.replaceChildren(
        answer.results.length
          ? h(
              'ol',
              { class: 'results', 'aria-label': 'What the agent would find' },
              ...answer.results.map((r) => h('li', {}, h('strong', { text: r.title }), h('span', { class: 'muted', text: ` — score ${r.score.toPrecision(3)}` }), h('p', { text: r.content }))),
            )
          : h('p', { class: 'empty', text: 'Nothing found: the agent would say it does not know.' }),
      );
    } catch (err) {
      showError(search, err);
    }
  });

  await loadCategories();
  return [
    screenHeader('Knowledge base', 'What the agent knows about your company: categories of documents it searches during calls.'),
    h('div', { class: 'split' }, h('div', {}, documentsBox), h('div', {}, section('Categories', categoriesBox), section('New category', create))),
    section('Search as the agent would', search),
  ];
}
