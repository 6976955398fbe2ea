//! Server-side encryption of everything vadflow writes: an interceptor sets it on every
//! `PutObject` and `CreateMultipartUpload` the client sends, so no write path can forget it.

use aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadInput;
use aws_sdk_s3::operation::put_object::PutObjectInput;
use aws_sdk_s3::types::ServerSideEncryption;

/// `--s3-sse`: the encryption S3 applies to what vadflow writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SseMode {
    /// SSE-S3: keys managed by S3.
    #[value(name = "AES256")]
    Aes256,
    /// SSE-KMS: a KMS key (`--s3-sse-kms-key-id`, or the account's default S3 key).
    #[value(name = "aws:kms")]
    Kms,
}

#[derive(Debug, Clone)]
pub struct Sse {
    pub mode: SseMode,
    pub kms_key_id: Option<String>,
}

impl Intercept for Sse {
    fn name(&self) -> &'static str {
        "vadflow server-side encryption"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let mode = match self.mode {
            SseMode::Aes256 => ServerSideEncryption::Aes256,
            SseMode::Kms => ServerSideEncryption::AwsKms,
        };
        let input = context.input_mut();
        if let Some(put) = input.downcast_mut::<PutObjectInput>() {
            put.server_side_encryption = Some(mode);
            put.ssekms_key_id.clone_from(&self.kms_key_id);
        } else if let Some(create) = input.downcast_mut::<CreateMultipartUploadInput>() {
            create.server_side_encryption = Some(mode);
            create.ssekms_key_id.clone_from(&self.kms_key_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SseMode;
    use crate::s3::S3Args;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback listener that answers every request with `reply` and sends each request's
    /// head (request line and headers, lowercased) on the channel. Not an S3 server: only a
    /// probe of what the client puts on the wire.
    async fn probe(reply: &'static str) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                        if let Some(end) = head_end {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                let _ = tx.send(head);
                                let _ = sock.write_all(reply.as_bytes()).await;
                                buf.drain(..end + 4 + len);
                                continue;
                            }
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (url, rx)
    }

    const PUT_OK: &str = "HTTP/1.1 200 OK\r\netag: \"e\"\r\ncontent-length: 0\r\n\r\n";
    const CREATE_OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: 139\r\n\r\n<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId></InitiateMultipartUploadResult>\n\n";

    async fn client(url: &str, sse: Option<SseMode>, key: Option<&str>) -> aws_sdk_s3::Client {
        let mut args = S3Args::local(url, "id", "secret");
        args.s3_sse = sse;
        args.s3_sse_kms_key_id = key.map(str::to_owned);
        args.s3_max_attempts = 1;
        args.client().await.expect("client")
    }

    async fn put(c: &aws_sdk_s3::Client) {
        c.put_object()
            .bucket("b")
            .key("k")
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect("put");
    }

    #[tokio::test]
    async fn every_write_asks_for_the_configured_encryption() {
        let (url, mut heads) = probe(PUT_OK).await;
        let c = client(&url, Some(SseMode::Kms), Some("alias/vadflow")).await;
        put(&c).await;
        let head = heads.recv().await.expect("a request");
        assert!(head.starts_with("put /b/k"), "{head}");
        assert!(
            head.contains("x-amz-server-side-encryption: aws:kms"),
            "{head}"
        );
        assert!(
            head.contains("x-amz-server-side-encryption-aws-kms-key-id: alias/vadflow"),
            "{head}"
        );

        let (url, mut heads) = probe(CREATE_OK).await;
        let c = client(&url, Some(SseMode::Aes256), None).await;
        let _ = c
            .create_multipart_upload()
            .bucket("b")
            .key("k")
            .send()
            .await;
        let head = heads.recv().await.expect("a request");
        assert!(head.starts_with("post /b/k?uploads"), "{head}");
        assert!(
            head.contains("x-amz-server-side-encryption: aes256"),
            "{head}"
        );

        let (url, mut heads) = probe(PUT_OK).await;
        let c = client(&url, None, None).await;
        put(&c).await;
        let head = heads.recv().await.expect("a request");
        assert!(
            !head.contains("server-side-encryption"),
            "none unless asked: {head}"
        );
    }

    #[tokio::test]
    async fn a_kms_key_without_kms_is_refused() {
        let mut args = S3Args::local("http://127.0.0.1:9", "id", "secret");
        args.s3_sse = Some(SseMode::Aes256);
        args.s3_sse_kms_key_id = Some("k".into());
        let err = args.client().await.expect_err("refused");
        assert!(err.to_string().contains("--s3-sse aws:kms"), "{err}");
    }
}
