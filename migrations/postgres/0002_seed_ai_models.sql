-- Seed the AI model catalogue (identical in both flavours).
-- The five chat models the platform already had, now marked model_type 'chat'; the two
-- call models the product spec names; the current GA realtime models; and the built-in
-- 'echo' provider that plays the caller's voice back (demos and diagnostics, no AI key).
-- Fixed ids keep the seed idempotent across nodes and databases.
INSERT INTO ai_models (id, provider, model_id, display_name, model_type, is_active, settings, created_at, updated_at) VALUES
 ('00000000-0000-4000-8000-000000000001', 'openai', 'gpt-5.2',                 'GPT-5.2',         'chat', 1, '{}', 1764028800000, 1764028800000),
 ('00000000-0000-4000-8000-000000000002', 'openai', 'gpt-5-mini',              'GPT-5 Mini',      'chat', 1, '{}', 1764028800000, 1764028800000),
 ('00000000-0000-4000-8000-000000000003', 'openai', 'gpt-5-nano',              'GPT-5 Nano',      'chat', 1, '{}', 1764028800000, 1764028800000),
 ('00000000-0000-4000-8000-000000000004', 'google', 'gemini-3-pro-preview',    'Gemini 3 Pro',    'chat', 1, '{}', 1764028800000, 1764028800000),
 ('00000000-0000-4000-8000-000000000005', 'google', 'gemini-3-flash-preview',  'Gemini 3 Flash',  'chat', 1, '{}', 1764028800000, 1764028800000),
 -- The 2024 preview speaks the beta dialect of the Realtime API; gemini-2.0-flash-exp was served on v1alpha.
 ('00000000-0000-4000-8000-000000000101', 'openai', 'gpt-4o-realtime-preview-2024-10-01', 'OpenAI Realtime API', 'call', 1, '{"realtimeDialect":"beta"}', 1764028800000, 1764028800000),
 ('00000000-0000-4000-8000-000000000102', 'google', 'gemini-2.0-flash-exp',    'Gemini Live API', 'call', 1, '{"liveApiVersion":"v1alpha"}', 1764028800000, 1764028800000),
 ('00000000-0000-4000-8000-000000000103', 'openai', 'gpt-realtime',            'GPT Realtime',    'call', 1, '{"realtimeDialect":"ga"}', 1764028800000, 1764028800000),
 ('00000000-0000-4000-8000-000000000104', 'google', 'gemini-2.5-flash-native-audio-preview-12-2025', 'Gemini 2.5 Flash Native Audio', 'call', 1, '{"liveApiVersion":"v1beta"}', 1764028800000, 1764028800000),
 ('00000000-0000-4000-8000-000000000105', 'echo',   'echo',                    'Echo (plays the caller back; no AI)', 'call', 1, '{}', 1764028800000, 1764028800000);
