// The API reference page: renders the gateway's OpenAPI document (`/api/openapi.json`)
// as a list of operations grouped by tag, with parameters, request bodies (schemas
// resolved from `$ref`s) and responses. Plain DOM, text only (never HTML from the
// document), nothing loaded from anywhere but the gateway.

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** An element with attributes and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Text with `code` spans, as the descriptions are written. */
function prose(text = '') {
  return text.split('`').map((part, i) => (i % 2 ? h('code', {}, part) : part));
}

function resolve(spec, schema, seen = new Set()) {
  if (!schema || !schema.$ref) return { schema, name: null };
  const name = schema.$ref.split('/').pop();
  if (seen.has(name)) return { schema: {}, name };
  const target = schema.$ref.replace(/^#\//, '').split('/').reduce((node, key) => node?.[key], spec);
  return { schema: target ?? {}, name };
}

/** A short type label: `string`, `integer (int64)`, `array of Foo`, `"a" | "b"`. */
function typeLabel(spec, raw) {
  const { schema, name } = resolve(spec, raw);
  if (!schema) return 'any';
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  const variants = schema.oneOf ?? schema.anyOf;
  if (variants) return variants.map((v) => typeLabel(spec, v)).join(' | ');
  if (schema.allOf?.length === 1) return typeLabel(spec, schema.allOf[0]);
  let type = Array.isArray(schema.type) ? schema.type.join(' | ') : schema.type;
  if (type === 'array' || (Array.isArray(schema.type) && schema.type.includes('array'))) {
    type = type.replace('array', `array of ${typeLabel(spec, schema.items)}`);
  }
  if (schema.format) type = `${type} (${schema.format})`;
  return name && schema.type === 'object' ? name : (type ?? name ?? 'object');
}

/** The fields of an object schema, nested objects within. */
function fields(spec, raw, depth = 0, seen = new Set()) {
  const { schema, name } = resolve(spec, raw, seen);
  if (!schema || depth > 6) return null;
  if (name) seen = new Set([...seen, name]);
  const inner = schema.allOf?.length === 1 ? resolve(spec, schema.allOf[0], seen).schema : schema;
  const properties = inner?.properties;
  if (!properties) {
    if (inner?.type === 'array') return fields(spec, inner.items, depth, seen);
    return null;
  }
  const required = new Set(inner.required ?? []);
  return h('ul', { class: 'fields' }, Object.entries(properties).map(([key, value]) =>
    h('li', {},
      h('span', { class: 'name' }, key), ' ',
      h('span', { class: 'type' }, typeLabel(spec, value)),
      required.has(key) ? h('span', { class: 'required' }, ' required') : null,
      value.description ? h('div', {}, prose(value.description)) : null,
      fields(spec, value, depth + 1, seen))));
}

function operation(spec, path, method, op) {
  const [summary, ...rest] = (op.description ?? op.summary ?? '').split('\n');
  const parameters = op.parameters ?? [];
  const content = op.requestBody?.content ?? {};
  const [mediaType, body] = Object.entries(content)[0] ?? [];
  const open = op.security && op.security.length && Object.keys(op.security[0] ?? {}).length === 0;
  const text = `${method} ${path} ${op.tags?.join(' ')} ${op.description ?? ''}`.toLowerCase();
  return h('details', { class: 'operation', 'data-text': text },
    h('summary', {},
      h('span', { class: `method ${method}` }, method.toUpperCase()),
      h('span', { class: 'path' }, path),
      h('span', { class: 'summary' }, prose(op.summary ?? summary)),
      open ? h('span', { class: 'lock' }, 'public') : null),
    h('div', { class: 'body' },
      rest.length ? h('p', {}, prose(rest.join(' '))) : null,
      parameters.length ? [h('h3', {}, 'Parameters'), h('table', {},
        h('tr', {}, h('th', {}, 'name'), h('th', {}, 'in'), h('th', {}, 'type'), h('th', {}, 'description')),
        parameters.map((p) => h('tr', {},
          h('td', {}, h('span', { class: 'name' }, p.name), p.required ? h('span', { class: 'required' }, ' required') : null),
          h('td', {}, p.in), h('td', {}, h('span', { class: 'type' }, typeLabel(spec, p.schema))),
          h('td', {}, prose(p.description ?? '')))))] : null,
      body ? [h('h3', {}, 'Request body ', h('code', {}, mediaType), ' ', h('span', { class: 'type' }, typeLabel(spec, body.schema))),
        fields(spec, body.schema)] : null,
      h('h3', {}, 'Responses'),
      h('table', {}, Object.entries(op.responses ?? {}).map(([status, response]) => {
        const schema = Object.values(response.content ?? {})[0]?.schema;
        return h('tr', {}, h('td', {}, h('code', {}, status)),
          h('td', {}, prose(response.description ?? ''), schema ? [' ', h('span', { class: 'type' }, typeLabel(spec, schema))] : null,
            schema && status.startsWith('2') ? fields(spec, schema) : null));
      }))));
}

function render(spec) {
  document.title = spec.info?.title ?? document.title;
  document.getElementById('title').textContent = spec.info?.title ?? 'API';
  document.getElementById('description').replaceChildren(...prose(spec.info?.description ?? ''));
  document.getElementById('version').textContent = spec.openapi ?? '';
  const byTag = new Map();
  for (const [path, item] of Object.entries(spec.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = op.tags?.[0] ?? 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(spec, path, method, op));
    }
  }
  const main = document.getElementById('operations');
  const nav = document.getElementById('tags');
  main.replaceChildren();
  for (const [tag, operations] of byTag) {
    const id = `tag-${tag}`;
    nav.append(h('a', { href: `#${id}` }, tag));
    main.append(h('section', { 'data-tag': tag }, h('h2', { id }, tag), operations));
  }
  const filter = document.getElementById('filter');
  filter.addEventListener('input', () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const section of main.querySelectorAll('section')) {
      let shown = 0;
      for (const op of section.querySelectorAll('.operation')) {
        op.hidden = !words.every((w) => op.dataset.text.includes(w));
        if (!op.hidden) shown += 1;
      }
      section.hidden = shown === 0;
    }
  });
}

async function main() {
  const status = document.getElementById('status');
  try {
    const response = await fetch(new URL('openapi.json', document.baseURI));
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    render(await response.json());
  } catch (err) {
    status.textContent = `The API description could not be loaded: ${err.message}`;
  }
}

main();
