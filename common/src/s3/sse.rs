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
