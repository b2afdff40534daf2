//! The stream translators never panic on arbitrary upstream bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::config::ProviderKind;
use tollgate_core::translate::{ResponseContext, StreamTranslator};

fuzz_target!(|data: &[u8]| {
    let context = ResponseContext { model: "m".into(), created: 0, fallback_id: "id".into() };
    for kind in [ProviderKind::Anthropic, ProviderKind::Gemini] {
        if let Some(mut translator) = StreamTranslator::for_provider(kind, &context) {
            let mut out = Vec::new();
            for piece in data.chunks(7) {
                translator.push(piece, &mut out);
            }
            translator.finish(&mut out);
        }
    }
});
