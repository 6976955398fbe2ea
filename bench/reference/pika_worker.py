"""Reference (b), the seed design distributed: a worker process consuming jobs from RabbitMQ
(pika), fetching the audio from S3 (boto3), finding the speech as reference (a) does, uploading
segments.json and speech.wav, publishing a result message and only then acking.

Usage: python pika_worker.py --amqp URL --queue NAME --results NAME --bucket RESULTS_BUCKET
Jobs are JSON: {"bucket": ..., "key": ...}. S3 settings come from AWS_* variables.
"""

import argparse
import json
import os
import time

# The SDK must never probe a cloud metadata endpoint: everything it needs is given explicitly.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import boto3  # noqa: E402
import pika  # noqa: E402
from botocore.config import Config  # noqa: E402

import vadcore  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    for flag in ("--amqp", "--queue", "--results", "--bucket"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--prefetch", type=int, default=2)
    a = ap.parse_args()
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ["AWS_REGION"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    conn = pika.BlockingConnection(pika.URLParameters(a.amqp))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_qos(prefetch_count=a.prefetch)

    def on_job(channel, method, _props, body):
        started = time.perf_counter()
        job = json.loads(body)
        data = s3.get_object(Bucket=job["bucket"], Key=job["key"])["Body"].read()
        pcm = vadcore.decode(data)
        segs = vadcore.segments(pcm)
        uri = f"s3://{job['bucket']}/{job['key']}"
        prefix = f"reference/{job['bucket']}/{job['key']}/"
        s3.put_object(Bucket=a.bucket, Key=prefix + "speech.wav", Body=vadcore.speech_wav(pcm, segs))
        s3.put_object(Bucket=a.bucket, Key=prefix + "segments.json",
                      Body=vadcore.segments_json(uri, pcm, segs))
        result = {"key": job["key"], "segments": len(segs), "elapsed_s": time.perf_counter() - started}
        channel.basic_publish("", a.results, json.dumps(result).encode(),
                              pika.BasicProperties(delivery_mode=2))
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume(a.queue, on_job)
    try:
        ch.start_consuming()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
