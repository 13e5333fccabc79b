//! Test messages.

/// A message with the things an archive copy can get wrong: folded headers (space and tab),
/// an encoded-word subject, an empty header, a header without a space after the colon, 8-bit
/// UTF-8 in the body, lines that start with dots (including a lone "."), leading and trailing
/// white space, an empty line inside and at the end of the body. CRLF line ends throughout.
pub fn tricky_message(message_id: &str, from: &str, to: &[&str]) -> Vec<u8> {
    let to = to.join(",\r\n\t");
    format!(
        "Date: Mon, 23 Nov 2026 19:00:00 +0000\r\n\
         From: Sender Name <{from}>\r\n\
         To: {to}\r\n\
         Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from the\r\n e2e test\r\n\
         Message-ID: <{message_id}>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         X-Empty:\r\n\
         X-No-Space:value right after the colon\r\n\
         X-Tab:\tvalue after a tab\r\n\
         X-Folded: first part\r\n\tsecond part after a tab\r\n  third part after two spaces\r\n\
         \r\n\
         Body with UTF-8: Grüße, naïve café.\r\n\
         .a line starting with a dot\r\n\
         ..two dots\r\n\
         .\r\n\
         \x20leading space\r\n\
         trailing spaces   \r\n\
         \r\n\
         {long}\r\n\
         last line\r\n\
         \r\n",
        long = "x".repeat(900),
    )
    .into_bytes()
}
