//! The notices' texts per language, embedded at compile time.
//!
//! Placeholders (`{duration}`, `{host}`, `{date}`) are filled with values mailtrail produced or
//! validated; untrusted texts (addresses, replies) are never put through a template, so they
//! cannot smuggle a placeholder in.

use crate::config::Language;
use std::time::Duration;

impl Language {
    pub(super) fn texts(self) -> &'static Texts {
        match self {
            Language::En => &EN,
            Language::It => &IT,
        }
    }
}

pub(super) struct Texts {
    pub intro: &'static str,
    pub warning_subject: &'static str,
    pub warning_banner: [&'static str; 2],
    pub warning_lead: &'static str,
    pub warning_until: &'static str,
    pub warning_list: &'static str,
    pub expiry_subject: &'static str,
    pub expiry_lead: &'static str,
    pub expiry_list: &'static str,
    pub receipt_subject: &'static str,
    pub receipt_lead: &'static str,
    pub receipt_note: &'static str,
    pub last_attempt: &'static str,
    pub host: &'static str,
    pub no_reply: &'static str,
    pub original_id: &'static str,
    pub minute: (&'static str, &'static str),
    pub hour: (&'static str, &'static str),
    pub and: &'static str,
}

const EN: Texts = Texts {
    intro: "This is the mail system at host {host}.",
    warning_subject: "Warning: could not send message for past {duration}",
    warning_banner: [
        "THIS IS A WARNING MESSAGE ONLY.",
        "YOU DO NOT NEED TO RESEND YOUR MESSAGE.",
    ],
    warning_lead: "Your message could not be delivered for {duration}.",
    warning_until: "The mail system will keep trying until {date}.",
    warning_list: "The message is still waiting for these recipients:",
    expiry_subject: "Returned mail: see transcript for details",
    expiry_lead: "Message could not be delivered for {duration}. It has been removed from the queue: \
                  no further attempts will be made.",
    expiry_list: "Transcript of the last attempts for the recipients that failed:",
    receipt_subject: "Return receipt",
    receipt_lead: "The following addresses had successful delivery notifications:",
    receipt_note: "Delivered means the recipient's mail server accepted the message.",
    last_attempt: "last attempt",
    host: "server",
    no_reply: "(no reply recorded)",
    original_id: "Your message:",
    minute: ("minute", "minutes"),
    hour: ("hour", "hours"),
    and: "",
};

const IT: Texts = Texts {
    intro: "Questo è il sistema di posta del server {host}.",
    warning_subject: "Avviso: impossibile inviare il messaggio da {duration}",
    warning_banner: [
        "QUESTO È SOLO UN MESSAGGIO DI AVVISO.",
        "NON È NECESSARIO INVIARE DI NUOVO IL MESSAGGIO.",
    ],
    warning_lead: "Non è stato possibile recapitare il messaggio da {duration}.",
    warning_until: "Il sistema di posta continuerà a provare fino a {date}.",
    warning_list: "Il messaggio è ancora in attesa per questi destinatari:",
    expiry_subject: "Messaggio non recapitato: vedere il rapporto per i dettagli",
    expiry_lead: "Non è stato possibile recapitare il messaggio per {duration}. È stato rimosso \
                  dalla coda: non verranno fatti altri tentativi.",
    expiry_list: "Rapporto degli ultimi tentativi per i destinatari non raggiunti:",
    receipt_subject: "Ricevuta di ritorno",
    receipt_lead: "Il messaggio è stato consegnato ai server di posta dei seguenti indirizzi:",
    receipt_note: "Consegnato significa che il server di posta del destinatario ha accettato il \
                   messaggio.",
    last_attempt: "ultimo tentativo",
    host: "server",
    no_reply: "(nessuna risposta registrata)",
    original_id: "Il tuo messaggio:",
    minute: ("minuto", "minuti"),
    hour: ("ora", "ore"),
    and: "e",
};

/// "30 minutes", "1 hour", "2 hours 30 minutes" ("2 ore e 30 minuti"); whole minutes, rounded
/// down, at least one minute.
pub(super) fn humanize(duration: Duration, texts: &Texts) -> String {
    let minutes = (duration.as_secs() / 60).max(1);
    let (h, m) = (minutes / 60, minutes % 60);
    let unit =
        |n: u64, (one, many): (&str, &str)| format!("{n} {}", if n == 1 { one } else { many });
    match (h, m) {
        (0, m) => unit(m, texts.minute),
        (h, 0) => unit(h, texts.hour),
        (h, m) if texts.and.is_empty() => {
            format!("{} {}", unit(h, texts.hour), unit(m, texts.minute))
        }
        (h, m) => format!(
            "{} {} {}",
            unit(h, texts.hour),
            texts.and,
            unit(m, texts.minute)
        ),
    }
}
