//! DNS messages ⇄ bytes with hickory-proto: request parsing, response
//! encoding with EDNS, and truncation for UDP (the client retries over TCP).

use hickory_proto::op::{
    emit_message_parts, Edns, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncoder;

use crate::answer::Response;

/// The UDP payload size this server advertises (the DNS Flag Day 2020 value).
pub const SERVER_UDP_PAYLOAD: u16 = 1232;

/// The transport a query arrived on; it bounds the response size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: the response must fit the client's advertised buffer (512 without EDNS).
    Udp,
    /// TCP: up to 65535 bytes.
    Tcp,
}

/// A parsed request, or what to send back without looking at any zone.
#[derive(Debug)]
pub enum Parsed {
    /// A standard query with exactly one question.
    Query(Message),
    /// An error response (FORMERR, NOTIMP) to send as is.
    Reply(Vec<u8>),
    /// Not worth answering (a response, or fewer than 12 bytes).
    Drop,
}

/// Parses one request.
pub fn parse(bytes: &[u8]) -> Parsed {
    let message = match Message::from_vec(bytes) {
        Ok(message) => message,
        Err(_) => return header_only_error(bytes, ResponseCode::FormErr),
    };
    if message.metadata.message_type != MessageType::Query {
        // Never answer responses: that would let anyone reflect traffic through us.
        return Parsed::Drop;
    }
    if message.metadata.op_code != OpCode::Query {
        return Parsed::Reply(error(&message, ResponseCode::NotImp, Transport::Tcp));
    }
    if message.queries.len() != 1 {
        return Parsed::Reply(error(&message, ResponseCode::FormErr, Transport::Tcp));
    }
    Parsed::Query(message)
}

/// An error response (no records) to `request`.
pub fn error(request: &Message, rcode: ResponseCode, transport: Transport) -> Vec<u8> {
    let response = Response {
        rcode,
        ..Response::default()
    };
    encode(request, &response, transport)
}

/// Encodes `response` to `request`. Over UDP, a response that does not fit is
/// replaced by its header and question with TC set.
pub fn encode(request: &Message, response: &Response, transport: Transport) -> Vec<u8> {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = response.authoritative;
    metadata.recursion_available = true;
    metadata.response_code = response.rcode;
    let edns = request.edns.as_ref().map(|_| {
        let mut edns = Edns::new();
        edns.set_max_payload(SERVER_UDP_PAYLOAD);
        edns
    });
    let max_size = match transport {
        Transport::Udp => request
            .edns
            .as_ref()
            .map_or(512, |e| e.max_payload().max(512)),
        Transport::Tcp => u16::MAX,
    };

    let mut buf = Vec::with_capacity(512);
    let none = || std::iter::empty::<&Record>();
    let emit = |buf: &mut Vec<u8>, metadata: &Metadata, additionals: bool| {
        buf.clear();
        let mut encoder = BinEncoder::new(buf);
        encoder.set_max_size(max_size);
        let mut extra: Box<dyn Iterator<Item = &Record>> = if additionals {
            Box::new(response.additionals.iter())
        } else {
            Box::new(none())
        };
        emit_message_parts(
            metadata,
            &mut request.queries.iter(),
            &mut response.answers.iter(),
            &mut response.authorities.iter(),
            &mut extra,
            edns.as_ref(),
            None,
            &mut encoder,
        )
    };
    match emit(&mut buf, &metadata, true) {
        Ok(header) if !header.metadata.truncation => return buf,
        Ok(_) => metadata.truncation = true,
        Err(_) => metadata.response_code = ResponseCode::ServFail,
    }
    // Additional records are optional: drop them before truncating the
    // answer, so that a complete answer is not retried over TCP (RFC 2181 §9).
    if metadata.truncation && !response.additionals.is_empty() {
        let mut complete = metadata;
        complete.truncation = false;
        if matches!(emit(&mut buf, &complete, false), Ok(h) if !h.metadata.truncation) {
            return buf;
        }
    }
    // Partial answers are worse than none (RFC 2181 §9): header and question only.
    buf.clear();
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_max_size(max_size);
    let result = emit_message_parts(
        &metadata,
        &mut request.queries.iter(),
        &mut none(),
        &mut none(),
        &mut none(),
        edns.as_ref(),
        None,
        &mut encoder,
    );
    if result.is_err() {
        buf.clear();
    }
    buf
}

/// A FORMERR-style reply built from the raw header of an unparseable request.
fn header_only_error(bytes: &[u8], rcode: ResponseCode) -> Parsed {
    let (Some(id), Some(flags)) = (bytes.get(..2), bytes.get(2)) else {
        return Parsed::Drop;
    };
    if bytes.len() < 12 || flags & 0x80 != 0 {
        return Parsed::Drop;
    }
    let mut out = vec![0u8; 12];
    out[..2].copy_from_slice(id);
    // QR=1, keep the opcode and RD bit.
    out[2] = 0x80 | (flags & 0x79);
    out[3] = rcode.low();
    Parsed::Reply(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, RecordType};

    fn query(edns_payload: Option<u16>) -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(
            Name::from_ascii("big.ns.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        if let Some(p) = edns_payload {
            let mut e = Edns::new();
            e.set_max_payload(p);
            m.set_edns(e);
        }
        m
    }

    fn many_records(n: u8) -> Vec<Record> {
        (0..n)
            .map(|i| {
                Record::from_rdata(
                    Name::from_ascii("big.ns.svc.cluster.local.").unwrap(),
                    5,
                    RData::A(A::new(10, 0, 0, i)),
                )
            })
            .collect()
    }

    #[test]
    fn udp_without_edns_truncates_to_header_and_question() {
        let records = many_records(60);
        let response = Response {
            authoritative: true,
            answers: records.clone(),
            ..Response::default()
        };
        let bytes = encode(&query(None), &response, Transport::Udp);
        let decoded = Message::from_vec(&bytes).unwrap();
        assert!(decoded.metadata.truncation);
        assert!(decoded.answers.is_empty());
        assert_eq!(decoded.queries.len(), 1);
        assert_eq!(decoded.metadata.id, 7);

        let bytes = encode(&query(None), &response, Transport::Tcp);
        let decoded = Message::from_vec(&bytes).unwrap();
        assert!(!decoded.metadata.truncation);
        assert_eq!(decoded.answers.len(), 60);
    }

    #[test]
    fn edns_buffer_size_lets_larger_udp_answers_through_and_is_echoed() {
        let records = many_records(60);
        let response = Response {
            answers: records.clone(),
            ..Response::default()
        };
        let bytes = encode(&query(Some(4096)), &response, Transport::Udp);
        let decoded = Message::from_vec(&bytes).unwrap();
        assert!(!decoded.metadata.truncation);
        assert_eq!(decoded.answers.len(), 60);
        assert_eq!(decoded.edns.unwrap().max_payload(), SERVER_UDP_PAYLOAD);
        assert!(decoded.metadata.recursion_desired && decoded.metadata.recursion_available);
    }

    #[test]
    fn additional_records_are_dropped_before_the_answer_is_truncated() {
        let response = Response {
            authoritative: true,
            answers: many_records(20),
            additionals: many_records(20),
            ..Response::default()
        };
        // 20 A records fit in 512 bytes, 40 do not: the answer goes out
        // whole, without TC and without the optional additional section.
        let bytes = encode(&query(None), &response, Transport::Udp);
        let decoded = Message::from_vec(&bytes).unwrap();
        assert!(!decoded.metadata.truncation);
        assert_eq!(decoded.answers.len(), 20);
        assert!(decoded.additionals.is_empty());
        // With room for both, both are sent.
        let bytes = encode(&query(Some(4096)), &response, Transport::Udp);
        let decoded = Message::from_vec(&bytes).unwrap();
        assert_eq!(decoded.additionals.len(), 20);
    }

    #[test]
    fn garbage_gets_formerr_and_responses_are_dropped() {
        let mut bytes = vec![0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xFF];
        match parse(&bytes) {
            Parsed::Reply(r) => assert_eq!(r, vec![0xAB, 0xCD, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]),
            other => panic!("unexpected {other:?}"),
        }
        bytes[2] |= 0x80;
        assert!(matches!(parse(&bytes), Parsed::Drop));
        assert!(matches!(parse(&[1, 2, 3]), Parsed::Drop));
    }
}
