//! One Gemini Live connection as a pure state machine: client messages in,
//! server frames (JSON or a close) out. The connection task in
//! `MockGeminiLive` owns the socket, the clock and the resumption handles.
//!
//! Message shapes and order follow `shared/fixtures/gemini-live/`. Fatal
//! errors are close frames, as with the real service: 1007 with Google's
//! "Invalid JSON payload received. Unknown name …" text for unknown fields,
//! and "Request contains an invalid argument." for bad values.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::audio::{self, RATE_16K, RATE_24K};
use crate::energy_vad::{EnergyVad, VadEvent, VadSettings};
use crate::ids;
use crate::mock_gemini_live::GeminiLiveConfig;
use crate::script::{MockReply, fill_template, transcript_deltas, word_chunk};

pub(crate) const INVALID_ARGUMENT: &str = "Request contains an invalid argument.";

/// The 30 prebuilt voices [LK api_proto.py].
pub(crate) const VOICES: &[&str] = &[
    "Achernar",
    "Achird",
    "Algenib",
    "Algieba",
    "Alnilam",
    "Aoede",
    "Autonoe",
    "Callirrhoe",
    "Charon",
    "Despina",
    "Enceladus",
    "Erinome",
    "Fenrir",
    "Gacrux",
    "Iapetus",
    "Kore",
    "Laomedeia",
    "Leda",
    "Orus",
    "Pulcherrima",
    "Puck",
    "Rasalgethi",
    "Sadachbia",
    "Sadaltager",
    "Schedar",
    "Sulafat",
    "Umbriel",
    "Vindemiatrix",
    "Zephyr",
    "Zubenelgenubi",
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    Json(Value),
    Close { code: u16, reason: String },
}

/// Facts the mock records.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LiveNote {
    Setup { model: String, setup: Value, resumed_from: Option<String> },
    HandleIssued(String),
    ToolCall { id: String, name: String },
    ToolResponse { id: String, name: String, response: Value },
    ToolCallCancelled(Vec<String>),
    TurnComplete { interrupted: bool, audio_ms: u64, transcript: String },
}

#[derive(Debug, Default)]
pub(crate) struct LiveOutcome {
    pub frames: Vec<Frame>,
    pub notes: Vec<LiveNote>,
}

impl LiveOutcome {
    fn json(&mut self, value: Value) {
        self.frames.push(Frame::Json(value));
    }

    fn close(reason: &str) -> Self {
        Self { frames: vec![Frame::Close { code: 1007, reason: reason.to_owned() }], notes: Vec::new() }
    }
}

/// A fatal problem: the connection closes with 1007 and this reason.
type Fatal = String;

fn unknown_name(key: &str, path: &str) -> Fatal {
    format!("Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field.")
}

fn invalid() -> Fatal {
    INVALID_ARGUMENT.to_owned()
}

fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An object whose keys (camelCase or snake_case) are all in `allowed`
/// (camelCase); `path` is the proto path for error texts.
fn message<'a>(value: &'a Value, path: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, Fatal> {
    let map = value.as_object().ok_or_else(invalid)?;
    if let Some(key) = map.keys().find(|k| !allowed.contains(&camel(k).as_str())) {
        return Err(unknown_name(key, path));
    }
    Ok(map)
}

/// A field by its camelCase name, also accepted in snake_case.
fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).or_else(|| map.get(&snake(name)))
}

fn text(value: &Value) -> Result<&str, Fatal> {
    value.as_str().ok_or_else(invalid)
}

fn flag(value: &Value) -> Result<bool, Fatal> {
    value.as_bool().ok_or_else(invalid)
}

/// Integers may arrive as numbers or (int64 style) strings.
fn int(value: &Value) -> Result<i64, Fatal> {
    value.as_i64().or_else(|| value.as_str().and_then(|s| s.parse().ok())).ok_or_else(invalid)
}

fn number(value: &Value) -> Result<f64, Fatal> {
    value.as_f64().ok_or_else(invalid)
}

fn enumeration(value: &Value, allowed: &[&str]) -> Result<String, Fatal> {
    let v = text(value)?;
    if allowed.contains(&v) { Ok(v.to_owned()) } else { Err(invalid()) }
}

fn join(path: &str, key: &str) -> String {
    format!("{path}.{}", snake(key))
}

/// The parsed parts of `setup` the mock acts on.
#[derive(Debug, Clone, PartialEq)]
struct LiveSettings {
    model: String,
    text_only: bool,
    input_transcription: bool,
    output_transcription: bool,
    tools: Vec<String>,
    /// `None`: automatic activity detection is disabled.
    vad: Option<VadSettings>,
    interrupts: bool,
    resumption: Option<Option<String>>,
}

fn check_content(value: &Value, path: &str) -> Result<(), Fatal> {
    let map = message(value, path, &["parts", "role"])?;
    if let Some(role) = field(map, "role") {
        text(role)?;
    }
    if let Some(parts) = field(map, "parts") {
        for part in parts.as_array().ok_or_else(invalid)? {
            let part = message(
                part,
                &join(path, "parts"),
                &[
                    "text",
                    "inlineData",
                    "fileData",
                    "functionCall",
                    "functionResponse",
                    "thought",
                    "thoughtSignature",
                    "executableCode",
                    "codeExecutionResult",
                    "videoMetadata",
                ],
            )?;
            if let Some(t) = field(part, "text") {
                text(t)?;
            }
            if let Some(blob) = field(part, "inlineData") {
                check_blob(blob, &join(path, "parts.inline_data"))?;
            }
        }
    }
    Ok(())
}

fn check_blob(value: &Value, path: &str) -> Result<(String, String), Fatal> {
    let map = message(value, path, &["data", "mimeType"])?;
    let data = field(map, "data").map(text).transpose()?.unwrap_or_default().to_owned();
    let mime = field(map, "mimeType").map(text).transpose()?.unwrap_or_default().to_owned();
    Ok((data, mime))
}

fn check_setup(setup: &Value, models: &[String]) -> Result<LiveSettings, Fatal> {
    let path = "setup";
    let map = message(
        setup,
        path,
        &[
            "model",
            "generationConfig",
            "systemInstruction",
            "tools",
            "realtimeInputConfig",
            "sessionResumption",
            "contextWindowCompression",
            "inputAudioTranscription",
            "outputAudioTranscription",
            "proactivity",
        ],
    )?;
    let model = text(field(map, "model").ok_or_else(invalid)?)?;
    let name = model.strip_prefix("models/").ok_or_else(invalid)?;
    if !models.iter().any(|m| m == name) {
        return Err(invalid());
    }

    let mut text_only = false;
    if let Some(config) = field(map, "generationConfig") {
        let p = join(path, "generationConfig");
        let config = message(
            config,
            &p,
            &[
                "candidateCount",
                "maxOutputTokens",
                "temperature",
                "topP",
                "topK",
                "presencePenalty",
                "frequencyPenalty",
                "responseModalities",
                "speechConfig",
                "mediaResolution",
                "seed",
                "enableAffectiveDialog",
                "thinkingConfig",
            ],
        )?;
        for key in ["temperature", "topP", "presencePenalty", "frequencyPenalty"] {
            if let Some(v) = field(config, key) {
                number(v)?;
            }
        }
        for key in ["candidateCount", "maxOutputTokens", "topK", "seed"] {
            if let Some(v) = field(config, key) {
                int(v)?;
            }
        }
        if let Some(v) = field(config, "enableAffectiveDialog") {
            flag(v)?;
        }
        if let Some(v) = field(config, "mediaResolution") {
            enumeration(
                v,
                &[
                    "MEDIA_RESOLUTION_UNSPECIFIED",
                    "MEDIA_RESOLUTION_LOW",
                    "MEDIA_RESOLUTION_MEDIUM",
                    "MEDIA_RESOLUTION_HIGH",
                ],
            )?;
        }
        if let Some(thinking) = field(config, "thinkingConfig") {
            message(thinking, &join(&p, "thinkingConfig"), &["thinkingBudget", "includeThoughts", "thinkingLevel"])?;
        }
        if let Some(modalities) = field(config, "responseModalities") {
            let list = modalities.as_array().ok_or_else(invalid)?;
            let names: Vec<String> =
                list.iter().map(|m| enumeration(m, &["AUDIO", "TEXT"])).collect::<Result<_, _>>()?;
            // One response modality per session (AUDIO+TEXT is refused).
            if names.len() != 1 {
                return Err(invalid());
            }
            text_only = names[0] == "TEXT";
            if text_only && name.contains("native-audio") {
                return Err("Cannot extract voices from a non-audio request.".into());
            }
        }
        if let Some(speech) = field(config, "speechConfig") {
            let sp = join(&p, "speechConfig");
            let speech = message(speech, &sp, &["voiceConfig", "languageCode", "multiSpeakerVoiceConfig"])?;
            if let Some(lang) = field(speech, "languageCode") {
                text(lang)?;
            }
            if let Some(voice) = field(speech, "voiceConfig") {
                let voice = message(voice, &join(&sp, "voiceConfig"), &["prebuiltVoiceConfig"])?;
                if let Some(prebuilt) = field(voice, "prebuiltVoiceConfig") {
                    let prebuilt = message(prebuilt, &join(&sp, "voiceConfig.prebuiltVoiceConfig"), &["voiceName"])?;
                    if let Some(name) = field(prebuilt, "voiceName") {
                        enumeration(name, VOICES)?;
                    }
                }
            }
        }
    }
    if let Some(instruction) = field(map, "systemInstruction") {
        check_content(instruction, &join(path, "systemInstruction"))?;
    }
    let mut tools = Vec::new();
    if let Some(list) = field(map, "tools") {
        for tool in list.as_array().ok_or_else(invalid)? {
            let p = join(path, "tools");
            let tool = message(
                tool,
                &p,
                &["functionDeclarations", "googleSearch", "codeExecution", "googleSearchRetrieval", "urlContext"],
            )?;
            if let Some(declarations) = field(tool, "functionDeclarations") {
                for declaration in declarations.as_array().ok_or_else(invalid)? {
                    let declaration = message(
                        declaration,
                        &join(&p, "functionDeclarations"),
                        &[
                            "name",
                            "description",
                            "parameters",
                            "parametersJsonSchema",
                            "behavior",
                            "response",
                            "responseJsonSchema",
                        ],
                    )?;
                    let name = text(field(declaration, "name").ok_or_else(invalid)?)?;
                    if name.is_empty() {
                        return Err(invalid());
                    }
                    tools.push(name.to_owned());
                    if let Some(d) = field(declaration, "description") {
                        text(d)?;
                    }
                    if let Some(params) = field(declaration, "parameters") {
                        params.as_object().ok_or_else(invalid)?;
                    }
                    if let Some(b) = field(declaration, "behavior") {
                        enumeration(b, &["BEHAVIOR_UNSPECIFIED", "BLOCKING", "NON_BLOCKING"])?;
                    }
                }
            }
        }
    }
    let mut vad = Some(VadSettings {
        // Gemini Live's default is high start sensitivity.
        threshold_rms: audio::db_to_linear(-45.0),
        prefix_padding_ms: 20,
        silence_duration_ms: 500,
        min_speech_ms: 30,
    });
    let mut interrupts = true;
    if let Some(input) = field(map, "realtimeInputConfig") {
        let p = join(path, "realtimeInputConfig");
        let input = message(input, &p, &["automaticActivityDetection", "activityHandling", "turnCoverage"])?;
        if let Some(handling) = field(input, "activityHandling") {
            let handling = enumeration(
                handling,
                &["ACTIVITY_HANDLING_UNSPECIFIED", "START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION"],
            )?;
            interrupts = handling != "NO_INTERRUPTION";
        }
        if let Some(coverage) = field(input, "turnCoverage") {
            enumeration(
                coverage,
                &[
                    "TURN_COVERAGE_UNSPECIFIED",
                    "TURN_INCLUDES_ONLY_ACTIVITY",
                    "TURN_INCLUDES_ALL_INPUT",
                    "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
                ],
            )?;
        }
        if let Some(detection) = field(input, "automaticActivityDetection") {
            let detection = message(
                detection,
                &join(&p, "automaticActivityDetection"),
                &[
                    "disabled",
                    "startOfSpeechSensitivity",
                    "endOfSpeechSensitivity",
                    "prefixPaddingMs",
                    "silenceDurationMs",
                ],
            )?;
            let mut settings = vad.unwrap_or(VadSettings {
                threshold_rms: 0.0,
                prefix_padding_ms: 20,
                silence_duration_ms: 500,
                min_speech_ms: 30,
            });
            if let Some(start) = field(detection, "startOfSpeechSensitivity") {
                let start = enumeration(
                    start,
                    &["START_SENSITIVITY_UNSPECIFIED", "START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"],
                )?;
                settings.threshold_rms =
                    audio::db_to_linear(if start == "START_SENSITIVITY_LOW" { -30.0 } else { -45.0 });
            }
            if let Some(end) = field(detection, "endOfSpeechSensitivity") {
                enumeration(end, &["END_SENSITIVITY_UNSPECIFIED", "END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW"])?;
            }
            if let Some(ms) = field(detection, "prefixPaddingMs") {
                settings.prefix_padding_ms = u32::try_from(int(ms)?).map_err(|_| invalid())?;
            }
            if let Some(ms) = field(detection, "silenceDurationMs") {
                settings.silence_duration_ms = u32::try_from(int(ms)?).map_err(|_| invalid())?;
            }
            let disabled = field(detection, "disabled").map(flag).transpose()?.unwrap_or(false);
            vad = if disabled { None } else { Some(settings) };
        }
    }
    let mut transcription = [false, false];
    for (n, key) in ["inputAudioTranscription", "outputAudioTranscription"].into_iter().enumerate() {
        if let Some(config) = field(map, key) {
            let config = message(config, &join(path, key), &["languageCodes"])?;
            if let Some(codes) = field(config, "languageCodes") {
                for code in codes.as_array().ok_or_else(invalid)? {
                    text(code)?;
                }
            }
            transcription[n] = true;
        }
    }
    let mut resumption = None;
    if let Some(config) = field(map, "sessionResumption") {
        let config = message(config, &join(path, "sessionResumption"), &["handle", "transparent"])?;
        if let Some(t) = field(config, "transparent") {
            flag(t)?;
        }
        let handle = field(config, "handle").map(text).transpose()?.map(str::to_owned);
        resumption = Some(handle);
    }
    if let Some(compression) = field(map, "contextWindowCompression") {
        let p = join(path, "contextWindowCompression");
        let compression = message(compression, &p, &["triggerTokens", "slidingWindow"])?;
        if let Some(t) = field(compression, "triggerTokens") {
            int(t)?;
        }
        if let Some(window) = field(compression, "slidingWindow") {
            let window = message(window, &join(&p, "slidingWindow"), &["targetTokens"])?;
            if let Some(t) = field(window, "targetTokens") {
                int(t)?;
            }
        }
    }
    if let Some(proactivity) = field(map, "proactivity") {
        let proactivity = message(proactivity, &join(path, "proactivity"), &["proactiveAudio"])?;
        if let Some(p) = field(proactivity, "proactiveAudio") {
            flag(p)?;
        }
    }
    Ok(LiveSettings {
        model: name.to_owned(),
        text_only,
        input_transcription: transcription[0],
        output_transcription: transcription[1],
        tools,
        vad,
        interrupts,
        resumption,
    })
}

/// A model turn going out chunk by chunk.
#[derive(Debug)]
struct LiveStream {
    chunks: Vec<Vec<i16>>,
    next_chunk: usize,
    words: Vec<String>,
    next_word: usize,
    transcript_sent: String,
    samples_sent: usize,
}

pub(crate) struct LiveSession {
    config: Arc<GeminiLiveConfig>,
    settings: Option<LiveSettings>,
    vad: Option<EnergyVad>,
    received_ms: f64,
    /// Inside a caller turn marked by `activityStart` (manual detection).
    manual_activity: bool,
    stream: Option<LiveStream>,
    pending_calls: Vec<(String, String)>,
    answered_calls: Vec<(String, Value)>,
    tool_calls_made: usize,
    replies_used: usize,
    turns_completed: usize,
}

impl LiveSession {
    pub(crate) fn new(config: Arc<GeminiLiveConfig>) -> Self {
        Self {
            config,
            settings: None,
            vad: None,
            received_ms: 0.0,
            manual_activity: false,
            stream: None,
            pending_calls: Vec::new(),
            answered_calls: Vec::new(),
            tool_calls_made: 0,
            replies_used: 0,
            turns_completed: 0,
        }
    }

    pub(crate) fn is_set_up(&self) -> bool {
        self.settings.is_some()
    }

    pub(crate) fn is_streaming(&self) -> bool {
        self.stream.is_some()
    }

    pub(crate) fn turns_completed(&self) -> usize {
        self.turns_completed
    }

    pub(crate) fn audio_received_ms(&self) -> u64 {
        self.received_ms as u64
    }

    /// Handles one client message. `known_handle` says whether a resumption
    /// handle was issued by this mock.
    pub(crate) fn handle(&mut self, raw: &str, known_handle: impl Fn(&str) -> bool) -> LiveOutcome {
        let Ok(value) = serde_json::from_str::<Value>(raw) else {
            return LiveOutcome::close(&invalid());
        };
        match self.dispatch(&value, known_handle) {
            Ok(outcome) => outcome,
            Err(reason) => LiveOutcome::close(&reason),
        }
    }

    fn dispatch(&mut self, value: &Value, known_handle: impl Fn(&str) -> bool) -> Result<LiveOutcome, Fatal> {
        let map = message(value, "", &["setup", "clientContent", "realtimeInput", "toolResponse"])?;
        // Exactly one of the four per message.
        if map.len() != 1 {
            return Err(invalid());
        }
        let mut out = LiveOutcome::default();
        let (key, body) = map.iter().next().ok_or_else(invalid)?;
        match (camel(key).as_str(), self.settings.is_some()) {
            ("setup", false) => self.setup(body, known_handle, &mut out)?,
            // A second setup, or anything before the first one.
            ("setup", true) | (_, false) => return Err(invalid()),
            ("realtimeInput", true) => self.realtime_input(body, &mut out)?,
            ("clientContent", true) => self.client_content(body, &mut out)?,
            ("toolResponse", true) => self.tool_response(body, &mut out)?,
            _ => return Err(invalid()),
        }
        Ok(out)
    }

    fn setup(&mut self, body: &Value, known_handle: impl Fn(&str) -> bool, out: &mut LiveOutcome) -> Result<(), Fatal> {
        let settings = check_setup(body, &self.config.models)?;
        let resumed_from = match &settings.resumption {
            Some(Some(handle)) if !known_handle(handle) => return Err(invalid()),
            Some(Some(handle)) => Some(handle.clone()),
            _ => None,
        };
        self.vad = settings.vad.map(|vad| EnergyVad::new(RATE_16K, vad));
        out.notes.push(LiveNote::Setup { model: settings.model.clone(), setup: body.clone(), resumed_from });
        let resumable = settings.resumption.is_some();
        self.settings = Some(settings);
        out.json(json!({"setupComplete": {}}));
        if resumable {
            self.issue_handle(out);
        }
        Ok(())
    }

    fn issue_handle(&self, out: &mut LiveOutcome) {
        let handle = ids::gemini_resumption_handle();
        out.json(json!({"sessionResumptionUpdate": {"newHandle": handle, "resumable": true}}));
        out.notes.push(LiveNote::HandleIssued(handle));
    }

    fn settings(&self) -> &LiveSettings {
        // Only called after setup (dispatch guarantees it).
        self.settings.as_ref().expect("setup done")
    }

    fn realtime_input(&mut self, body: &Value, out: &mut LiveOutcome) -> Result<(), Fatal> {
        let path = "realtime_input";
        let map = message(
            body,
            path,
            &["mediaChunks", "audio", "video", "text", "activityStart", "activityEnd", "audioStreamEnd"],
        )?;
        let mut blobs = Vec::new();
        if let Some(audio) = field(map, "audio") {
            blobs.push(check_blob(audio, &join(path, "audio"))?);
        }
        if let Some(chunks) = field(map, "mediaChunks") {
            for chunk in chunks.as_array().ok_or_else(invalid)? {
                blobs.push(check_blob(chunk, &join(path, "mediaChunks"))?);
            }
        }
        let automatic = self.settings().vad.is_some();
        if field(map, "activityStart").is_some() {
            if automatic {
                return Err(invalid());
            }
            message(field(map, "activityStart").ok_or_else(invalid)?, &join(path, "activityStart"), &[])?;
            self.manual_activity = true;
            self.caller_started(out);
        }
        for (data, mime) in blobs {
            let samples = decode_input(&data, &mime)?;
            self.received_ms += samples.len() as f64 * 1000.0 / f64::from(RATE_16K);
            let events = self.vad.as_mut().map(|vad| vad.push(&samples)).unwrap_or_default();
            for event in events {
                match event {
                    VadEvent::SpeechStarted { .. } => self.caller_started(out),
                    VadEvent::SpeechStopped { .. } => self.caller_finished(true, out),
                }
            }
        }
        if let Some(t) = field(map, "text") {
            let t = text(t)?;
            if !t.is_empty() {
                self.caller_started(out);
                self.caller_finished(false, out);
            }
        }
        if let Some(end) = field(map, "activityEnd") {
            if automatic {
                return Err(invalid());
            }
            message(end, &join(path, "activityEnd"), &[])?;
            if self.manual_activity {
                self.manual_activity = false;
                self.caller_finished(true, out);
            }
        }
        if let Some(end) = field(map, "audioStreamEnd")
            && flag(end)?
            && let Some(VadEvent::SpeechStopped { .. }) = self.vad.as_mut().and_then(EnergyVad::end_turn)
        {
            self.caller_finished(true, out);
        }
        Ok(())
    }

    fn client_content(&mut self, body: &Value, out: &mut LiveOutcome) -> Result<(), Fatal> {
        let map = message(body, "client_content", &["turns", "turnComplete"])?;
        if let Some(turns) = field(map, "turns") {
            for turn in turns.as_array().ok_or_else(invalid)? {
                check_content(turn, "client_content.turns")?;
            }
        }
        let complete = field(map, "turnComplete").map(flag).transpose()?.unwrap_or(false);
        if complete {
            // New client content interrupts a model turn in progress.
            self.caller_started(out);
            self.caller_finished(false, out);
        }
        Ok(())
    }

    fn tool_response(&mut self, body: &Value, out: &mut LiveOutcome) -> Result<(), Fatal> {
        let map = message(body, "tool_response", &["functionResponses"])?;
        let responses = field(map, "functionResponses").ok_or_else(invalid)?.as_array().ok_or_else(invalid)?;
        for response in responses {
            let response = message(
                response,
                "tool_response.function_responses",
                &["id", "name", "response", "willContinue", "scheduling"],
            )?;
            let id = text(field(response, "id").ok_or_else(invalid)?)?;
            let name = field(response, "name").map(text).transpose()?.unwrap_or_default();
            let payload = field(response, "response").cloned().unwrap_or(Value::Null);
            if !payload.is_null() {
                payload.as_object().ok_or_else(invalid)?;
            }
            if let Some(s) = field(response, "scheduling") {
                enumeration(s, &["SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"])?;
            }
            let Some(index) = self.pending_calls.iter().position(|(pending, _)| pending == id) else {
                return Err(invalid());
            };
            self.pending_calls.remove(index);
            out.notes.push(LiveNote::ToolResponse {
                id: id.to_owned(),
                name: name.to_owned(),
                response: payload.clone(),
            });
            self.answered_calls.push((id.to_owned(), payload));
        }
        if self.pending_calls.is_empty() && !self.answered_calls.is_empty() {
            let outputs: Vec<String> =
                std::mem::take(&mut self.answered_calls).into_iter().map(|(_, r)| tool_output_text(&r)).collect();
            let reply = MockReply {
                transcript: fill_template(&self.config.tool_reply_template, &outputs.join("\n")),
                audio: self.config.reply.audio.clone(),
            };
            self.start_model_turn(reply);
        }
        Ok(())
    }

    /// The caller started talking: interrupt the model and drop pending calls.
    fn caller_started(&mut self, out: &mut LiveOutcome) {
        if self.stream.is_some() && self.settings().interrupts {
            out.json(json!({"serverContent": {"interrupted": true}}));
            self.finish_turn(true, out);
        }
        if !self.pending_calls.is_empty() {
            let ids: Vec<String> = self.pending_calls.drain(..).map(|(id, _)| id).collect();
            out.json(json!({"toolCallCancellation": {"ids": ids}}));
            out.notes.push(LiveNote::ToolCallCancelled(ids));
        }
    }

    /// The caller's turn ended: transcribe it, then call a tool or answer.
    fn caller_finished(&mut self, spoken: bool, out: &mut LiveOutcome) {
        if self.stream.is_some() {
            // NO_INTERRUPTION: the model keeps talking and ignores the turn.
            return;
        }
        if spoken && self.settings().input_transcription {
            let words = transcript_deltas(&self.config.user_transcript);
            let chunks = 3.min(words.len());
            for n in 0..chunks {
                let part: String = words
                    .iter()
                    .enumerate()
                    .filter(|(w, _)| word_chunk(*w, words.len(), chunks) == n)
                    .map(|(_, word)| word.as_str())
                    .collect();
                let part = if part.starts_with(char::is_whitespace) { part } else { format!(" {part}") };
                out.json(json!({"serverContent": {"inputTranscription": {"text": part}}}));
            }
        }
        if let Some(script) = &self.config.tool_call
            && self.settings().tools.contains(&script.name)
            && script.max_calls.is_none_or(|max| self.tool_calls_made < max)
        {
            let id = ids::gemini_function_call();
            out.json(
                json!({"toolCall": {"functionCalls": [{"id": id, "args": script.arguments, "name": script.name}]}}),
            );
            out.notes.push(LiveNote::ToolCall { id: id.clone(), name: script.name.clone() });
            self.pending_calls.push((id, script.name.clone()));
            self.tool_calls_made += 1;
            return;
        }
        let reply = self.config.replies.get(self.replies_used).cloned().unwrap_or_else(|| self.config.reply.clone());
        self.replies_used += 1;
        self.start_model_turn(reply);
    }

    fn start_model_turn(&mut self, reply: MockReply) {
        let chunk_len = audio::samples_for_ms(RATE_24K, self.config.chunk_ms.max(10));
        let chunks = if self.settings().text_only {
            Vec::new()
        } else {
            reply.audio.chunks(chunk_len.max(1)).map(<[i16]>::to_vec).collect()
        };
        self.stream = Some(LiveStream {
            chunks,
            next_chunk: 0,
            words: transcript_deltas(&reply.transcript),
            next_word: 0,
            transcript_sent: String::new(),
            samples_sent: 0,
        });
    }

    /// The next part of the model turn (and its end after the last part).
    pub(crate) fn next_chunk(&mut self) -> LiveOutcome {
        let mut out = LiveOutcome::default();
        let settings = self.settings.clone();
        let Some(settings) = settings else { return out };
        let Some(stream) = self.stream.as_mut() else {
            return out;
        };
        let total = stream.chunks.len();
        let text_only = settings.text_only;
        let units = if text_only { stream.words.len() } else { total };
        let current = if text_only { stream.next_word } else { stream.next_chunk };
        let last = current + 1 >= units;
        let mut words = String::new();
        while stream.next_word < stream.words.len()
            && (last || word_chunk(stream.next_word, stream.words.len(), units) <= current)
        {
            words.push_str(&stream.words[stream.next_word]);
            stream.next_word += 1;
            if text_only {
                break;
            }
        }
        stream.transcript_sent.push_str(&words);
        if text_only {
            if !words.is_empty() {
                out.json(json!({"serverContent": {"modelTurn": {"parts": [{"text": words}]}}}));
            }
        } else {
            if let Some(chunk) = stream.chunks.get(stream.next_chunk) {
                out.json(json!({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
                    "mimeType": "audio/pcm;rate=24000",
                    "data": audio::pcm16_base64(chunk),
                }}]}}}));
                stream.samples_sent += chunk.len();
                stream.next_chunk += 1;
            }
            if settings.output_transcription && !words.is_empty() {
                out.json(json!({"serverContent": {"outputTranscription": {"text": words}}}));
            }
        }
        let finished = if text_only { stream.next_word >= stream.words.len() } else { stream.next_chunk >= total };
        if finished {
            out.json(json!({"serverContent": {"generationComplete": true}}));
            self.finish_turn(false, &mut out);
        }
        out
    }

    fn finish_turn(&mut self, interrupted: bool, out: &mut LiveOutcome) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let audio_ms = audio::ms_for_samples(RATE_24K, stream.samples_sent);
        let response_tokens = (audio_ms / 40).max(stream.next_word as u64);
        let prompt_tokens = 6_500 + self.audio_received_ms() / 40;
        out.json(json!({
            "serverContent": {"turnComplete": true},
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "responseTokenCount": response_tokens,
                "totalTokenCount": prompt_tokens + response_tokens,
                "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": 6_500},
                    {"modality": "AUDIO", "tokenCount": prompt_tokens - 6_500},
                ],
                "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response_tokens}],
            },
        }));
        out.notes.push(LiveNote::TurnComplete { interrupted, audio_ms, transcript: stream.transcript_sent });
        self.turns_completed += 1;
        if self.settings.as_ref().is_some_and(|s| s.resumption.is_some()) {
            self.issue_handle(out);
        }
    }
}

/// The text a tool result contributes to the spoken answer: `result` or
/// `output` when it is a string, else the whole response as JSON.
fn tool_output_text(response: &Value) -> String {
    ["result", "output"]
        .iter()
        .find_map(|key| response.get(*key).and_then(Value::as_str))
        .map_or_else(|| response.to_string(), str::to_owned)
}

/// Caller audio must be 16-bit PCM at 16 kHz (`audio/pcm;rate=16000`; a bare
/// `audio/pcm` is taken as 16 kHz).
fn decode_input(data: &str, mime: &str) -> Result<Vec<i16>, Fatal> {
    let mut parts = mime.split(';').map(str::trim);
    if parts.next() != Some("audio/pcm") {
        return Err(invalid());
    }
    for parameter in parts {
        match parameter.split_once('=') {
            Some(("rate", "16000")) => {}
            _ => return Err(invalid()),
        }
    }
    audio::pcm16_from_base64(data).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> Vec<String> {
        vec!["gemini-2.5-flash-native-audio-preview-12-2025".into(), "gemini-live-2.5-flash-preview".into()]
    }

    #[test]
    fn setup_accepts_snake_case_and_reads_the_settings() {
        let setup = json!({
            "model": "models/gemini-live-2.5-flash-preview",
            "generation_config": {"response_modalities": ["TEXT"]},
            "realtime_input_config": {"automatic_activity_detection": {"silence_duration_ms": 100}},
            "input_audio_transcription": {},
            "session_resumption": {},
        });
        let settings = check_setup(&setup, &models()).expect("valid");
        assert!(settings.text_only && settings.input_transcription && !settings.output_transcription);
        assert_eq!(settings.vad.map(|v| v.silence_duration_ms), Some(100));
        assert_eq!(settings.resumption, Some(None));
    }

    #[test]
    fn setup_rejects_what_the_service_rejects() {
        let bad = [
            (json!({"model": "models/gemini-no-such-model"}), INVALID_ARGUMENT),
            (json!({"model": "gemini-live-2.5-flash-preview"}), INVALID_ARGUMENT),
            (
                json!({"model": "models/gemini-live-2.5-flash-preview", "generationConfig": {"responseModalities": ["AUDIO", "TEXT"]}}),
                INVALID_ARGUMENT,
            ),
            (
                json!({"model": "models/gemini-live-2.5-flash-preview", "generationConfig": {"speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "alloy"}}}}}),
                INVALID_ARGUMENT,
            ),
            (
                json!({"model": "models/gemini-2.5-flash-native-audio-preview-12-2025", "generationConfig": {"responseModalities": ["TEXT"]}}),
                "Cannot extract voices from a non-audio request.",
            ),
        ];
        for (setup, reason) in bad {
            assert_eq!(check_setup(&setup, &models()).expect_err("invalid"), reason, "{setup}");
        }
        let unknown = check_setup(&json!({"model": "models/gemini-live-2.5-flash-preview", "voice": "x"}), &models());
        assert_eq!(
            unknown.expect_err("unknown field"),
            "Invalid JSON payload received. Unknown name \"voice\" at 'setup': Cannot find field."
        );
    }

    #[test]
    fn input_audio_must_be_16_khz_pcm() {
        assert!(decode_input("8//2//v/9//q/+//", "audio/pcm;rate=16000").is_ok());
        assert!(decode_input("8//2//v/9//q/+//", "audio/pcm").is_ok());
        assert!(decode_input("8//2//v/9//q/+//", "audio/pcm;rate=24000").is_err());
        assert!(decode_input("8//2//v/9//q/+//", "audio/wav").is_err());
    }
}
