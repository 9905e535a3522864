"""EDP's object storage against a real one-replica Swift with s3api (``tools/swift``):
job binaries fetched through python-swiftclient and boto3, refusals that name no secret,
hosts the policy does not allow, ``file://`` binaries kept in their project's folder, and a
real Spark (local mode) word count reading and writing ``s3a://`` on the Swift proxy with
the slim S3A jar set."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from sahara_es.edp.base import DataSourceAccess
from sahara_es.edp.storage import (
    StoragePolicy,
    StorageRefused,
    fetch_binary,
    get_object,
    list_objects,
    project_folder_name,
    put_object,
    s3a_jars,
    s3a_settings,
)
from tests.integration.conftest import SwiftStorage

WRONG = "not-the-key-4f1c9e"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def test_swift_and_s3_binaries_fetched_with_their_credentials(swift_storage: SwiftStorage
                                                               ) -> None:
    container, data = unique("bins"), os.urandom(3000)
    put_object(f"swift://{container}/lib/job.jar", data, swift_storage.swift_credentials,
               swift_storage.policy)
    assert fetch_binary(f"swift://{container}/lib/job.jar", swift_storage.swift_credentials,
                        "p1", swift_storage.policy) == data
    # Sahara's older container.sahara form names the same container
    assert fetch_binary(f"swift://{container}.sahara/lib/job.jar",
                        swift_storage.swift_credentials, "p1", swift_storage.policy) == data
    # the same container is an S3 bucket on the same proxy
    assert fetch_binary(f"s3://{container}/lib/job.jar", swift_storage.s3_credentials, "p1",
                        swift_storage.policy) == data
    put_object(f"s3://{container}/other.py", b"print('hi')", swift_storage.s3_credentials,
               swift_storage.policy)
    assert get_object(f"swift://{container}/other.py", swift_storage.swift_credentials,
                      swift_storage.policy) == b"print('hi')"
    assert list_objects(f"s3://{container}/", swift_storage.s3_credentials,
                        swift_storage.policy) == ["lib/job.jar", "other.py"]
    assert list_objects(f"swift://{container}/lib/", swift_storage.swift_credentials,
                        swift_storage.policy) == ["lib/job.jar"]


def test_wrong_credentials_refused_naming_no_secret(swift_storage: SwiftStorage,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # swiftclient's and botocore's request logs included
    container = unique("bins")
    put_object(f"swift://{container}/a.py", b"x", swift_storage.swift_credentials,
               swift_storage.policy)
    for url, credentials in [
        (f"swift://{container}/a.py", {"user": swift_storage.user, "password": WRONG}),
        (f"s3://{container}/a.py", {**swift_storage.s3_credentials, "secretkey": WRONG}),
        (f"s3://{container}/a.py", {**swift_storage.s3_credentials, "accesskey": "no:body",
                                    "secretkey": WRONG}),
    ]:
        with pytest.raises(StorageRefused) as refused:
            fetch_binary(url, credentials, "p1", swift_storage.policy)
        assert "credentials" in str(refused.value)
        assert WRONG not in str(refused.value) and WRONG not in repr(refused.value)
        assert swift_storage.key not in str(refused.value)
        assert refused.value.__cause__ is None and not refused.value.retryable
    assert WRONG not in caplog.text
    with pytest.raises(StorageRefused, match="no such object"):
        fetch_binary(f"swift://{container}/missing", swift_storage.swift_credentials, "p1",
                     swift_storage.policy)
    with pytest.raises(StorageRefused, match="no such object"):
        fetch_binary(f"s3://{container}/missing", swift_storage.s3_credentials, "p1",
                     swift_storage.policy)


def test_size_cap(swift_storage: SwiftStorage) -> None:
    container = unique("bins")
    put_object(f"s3://{container}/big", b"x" * 5000, swift_storage.s3_credentials,
               swift_storage.policy)
    small = dataclasses.replace(swift_storage.policy, max_bytes=4096)
    for url, credentials in [(f"s3://{container}/big", swift_storage.s3_credentials),
                             (f"swift://{container}/big", swift_storage.swift_credentials)]:
        with pytest.raises(StorageRefused, match="4096"):
            fetch_binary(url, credentials, "p1", small)


def test_loopback_not_allowed_is_refused(swift_storage: SwiftStorage) -> None:
    strict = StoragePolicy(swift_auth_url=swift_storage.auth_url,
                           s3_endpoint=swift_storage.s3_endpoint)
    with pytest.raises(StorageRefused, match="loopback"):
        fetch_binary("swift://bins/a.py", swift_storage.swift_credentials, "p1", strict)
    with pytest.raises(StorageRefused, match="loopback"):
        fetch_binary("s3://bins/a.py", swift_storage.s3_credentials, "p1", strict)
    # a tenant's own endpoint aimed at the service's host or the metadata address
    for endpoint in ["http://127.0.0.1:9042", "http://localhost:8680",
                     "http://169.254.169.254/latest", "http://[::1]:8680"]:
        with pytest.raises(StorageRefused):
            fetch_binary("s3://bins/a.py", {**swift_storage.s3_credentials,
                                            "endpoint": endpoint}, "p1",
                         swift_storage.policy)


def test_file_binaries_stay_in_their_project_folder(tmp_path: Path) -> None:
    root = tmp_path / "binaries"
    mine, theirs = root / project_folder_name("p1"), root / project_folder_name("p2")
    mine.mkdir(parents=True)
    theirs.mkdir(parents=True)
    (mine / "job.py").write_bytes(b"print(1)")
    (theirs / "secret.py").write_bytes(b"theirs")
    (tmp_path / "outside.py").write_bytes(b"outside")
    (mine / "link.py").symlink_to(tmp_path / "outside.py")
    (mine / "sub").mkdir()
    policy = StoragePolicy(binary_root=root)
    assert fetch_binary(f"file://{mine}/job.py", {}, "p1", policy) == b"print(1)"
    for url in [f"file://{theirs}/secret.py", f"file://{tmp_path}/outside.py",
                f"file://{mine}/../p2/secret.py", f"file://{mine}/sub/../job.py",
                f"file://{mine}/link.py", f"file://{mine}", "file://job.py",
                f"file://{mine}/missing.py"]:
        with pytest.raises(StorageRefused) as refused:
            fetch_binary(url, {}, "p1", policy)
        assert str(tmp_path) not in str(refused.value)
    with pytest.raises(StorageRefused, match="no job binary folder"):
        fetch_binary(f"file://{mine}/job.py", {}, "p1", StoragePolicy())
    big = dataclasses.replace(policy, max_bytes=4)
    with pytest.raises(StorageRefused, match="larger than 4"):
        fetch_binary(f"file://{mine}/job.py", {}, "p1", big)


WORD_COUNT = textwrap.dedent("""\
    import sys
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("wordcount").getOrCreate()
    lines = spark.sparkContext.textFile(sys.argv[1])
    counts = (lines.flatMap(lambda line: line.split())
              .map(lambda word: (word, 1)).reduceByKey(lambda a, b: a + b))
    counts.map(lambda pair: f"{pair[0]}\\t{pair[1]}").saveAsTextFile(sys.argv[2])
    spark.stop()
""")


def test_spark_word_count_on_s3a(swift_storage: SwiftStorage, tmp_path: Path) -> None:
    """Input as a swift:// data source, output as an s3:// one (different buckets, each with
    its own per-bucket settings), both served by S3A on the Swift proxy."""
    import pyspark

    source_bucket, target_bucket = unique("wcin"), unique("wcout")
    text = {"a.txt": b"spark swift spark\ns3a spark\n", "b.txt": b"swift s3a\nspark\n"}
    for name, data in text.items():
        put_object(f"swift://{source_bucket}/in/{name}", data,
                   swift_storage.swift_credentials, swift_storage.policy)
    put_object(f"s3://{target_bucket}/placeholder", b"", swift_storage.s3_credentials,
               swift_storage.policy)
    source = DataSourceAccess(f"swift://{source_bucket}/in", "swift",
                              swift_storage.swift_credentials)
    target = DataSourceAccess(f"s3://{target_bucket}/out", "s3", swift_storage.s3_credentials)
    source_url, source_settings = s3a_settings(source, swift_storage.policy)
    target_url, target_settings = s3a_settings(target, swift_storage.policy)
    properties = tmp_path / "spark.properties"
    properties.touch(mode=0o600)  # the secrets go to a file only we read, not to argv
    properties.write_text("".join(f"{k}={v}\n" for k, v in
                                  {**source_settings, **target_settings}.items()))
    script = tmp_path / "wordcount.py"
    script.write_text(WORD_COUNT)
    jars = s3a_jars()
    assert not any(j.name.startswith("bundle-") for j in jars)
    assert sum(j.stat().st_size for j in jars) < 64 * 1024 * 1024
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    run = subprocess.run(
        [str(spark_submit), "--master", "local[1]", "--properties-file", str(properties),
         "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.memory=512m",
         "--jars", ",".join(str(j) for j in jars), str(script),
         f"{source_url}/*.txt", target_url],
        env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    assert swift_storage.key not in run.stdout
    names = list_objects(f"s3://{target_bucket}/out/", swift_storage.s3_credentials,
                         swift_storage.policy)
    assert "out/_SUCCESS" in names
    counts: dict[str, int] = {}
    for name in names:
        if name.rsplit("/", 1)[-1].startswith("part-"):
            data = get_object(f"s3://{target_bucket}/{name}", swift_storage.s3_credentials,
                              swift_storage.policy)
            for line in data.decode().splitlines():
                word, count = line.split("\t")
                counts[word] = int(count)
    assert counts == {"spark": 4, "swift": 2, "s3a": 2}

