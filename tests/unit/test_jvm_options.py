"""The JVM option policy (``plugins/jvm.py``) as a specification: what a tenant's options may
hold before a plugin hands them to a JVM, and what each dangerous form is refused for."""

from __future__ import annotations

import pytest

from sahara_es.plugins.jvm import UnsafeJvmOption, check_options
from sahara_es.plugins.spark import DEFAULTS

ORDINARY = [
    "-Xmx2g -Dspark.foo=bar -XX:+UseG1GC -XX:MaxGCPauseMillis=200",
    DEFAULTS["Daemon Java options"],
    "",
    "-Xms256m -Xss1m -Xmn64m -Xmx1024",
    "-XX:-UseAdaptiveSizePolicy -XX:+ExitOnOutOfMemoryError -XX:MaxDirectMemorySize=1g",
    "-Dspark.port.maxRetries=0 -Dspark.decommission.enabled=true -Dflag",
    "-Dfile.encoding=UTF-8 -Djava.net.preferIPv4Stack=true -Duser.timezone=UTC",
    "  -Dspark.worker.cleanup.enabled=true   -Dspark.ui.port=4040 ",
]


@pytest.mark.parametrize("options", ORDINARY)
def test_ordinary_options_are_accepted(options: str) -> None:
    assert check_options(options) == options.split()


REPORTED = [
    # The JVM ran a shell command when it could not find the main class.
    ("-XX:+UnlockDiagnosticVMOptions -XX:AbortVMOnException=java.lang.ClassNotFoundException"
     " -XX:OnError=touch${IFS}/tmp/pwned -Dx=1 NoSuchMainClass",
     "-XX:+UnlockDiagnosticVMOptions"),
    # The JVM read a host file: its first line became the main class, shown in the error.
    ("@/some/file", "@/some/file"),
]


@pytest.mark.parametrize(("options", "token"), REPORTED)
def test_the_reported_exploits_are_refused_naming_the_token(options: str, token: str) -> None:
    with pytest.raises(UnsafeJvmOption) as refused:
        check_options(options)
    assert refused.value.token == token
    assert token in str(refused.value)


DANGEROUS = [
    # commands run by the JVM
    "-XX:OnError=touch${IFS}/tmp/pwned",
    "-XX:OnError=id",
    "-XX:OnOutOfMemoryError=id",
    "-XX:+CrashOnOutOfMemoryError",
    "-XX:AbortVMOnException=java.lang.Error",
    "-XX:+ShowMessageBoxOnError",
    # options that unlock more options
    "-XX:+UnlockDiagnosticVMOptions",
    "-XX:+UnlockExperimentalVMOptions",
    # files read
    "@/etc/passwd",
    "@argfile",
    "-XX:VMOptionsFile=/etc/passwd",
    "-XX:Flags=/etc/passwd",
    "-XX:Flags=.hotspotrc",
    "-XX:CompileCommandFile=/etc/passwd",
    "-XX:CompileCommand=quiet",
    "-XX:SharedArchiveFile=/tmp/a.jsa",
    "-XX:SharedClassListFile=x",
    # files written
    "-XX:ErrorFile=/tmp/err.log",
    "-XX:HeapDumpPath=/tmp",
    "-XX:+HeapDumpOnOutOfMemoryError",
    "-XX:LogFile=/tmp/x",
    "-XX:+LogVMOutput",
    "-XX:StartFlightRecording=filename=/tmp/x.jfr",
    "-XX:StartFlightRecording",
    "-XX:FlightRecorderOptions=repository=/tmp",
    "-XX:ArchiveClassesAtExit=app.jsa",
    "-XX:+DumpLoadedClassList",
    "-XX:PerfDataSaveFile=x",
    "-Xlog:gc:file=/tmp/gc.log",
    "-Xlog:gc:/tmp/gc.log",
    "-Xlog:gc",
    "-XX:+PrintFlagsFinal",
    # code loaded
    "-agentlib:jdwp=transport=dt_socket,server=y,address=5005",
    "-agentpath:/tmp/evil.so",
    "-javaagent:/tmp/evil.jar",
    "-cp",
    "-classpath",
    "--class-path",
    "-jar",
    "--module-path",
    "-p",
    "--add-opens",
    "-Xbootclasspath/a:/tmp/evil.jar",
    "-Xbootclasspath:/tmp",
    "-XX:+EnableJVMCI",
    "-XX:JVMCILibPath=/tmp",
    "-XX:+EnableDynamicAgentLoading",
    "-XX:+StartAttachListener",
    "-Djava.library.path=/tmp",
    "-Djava.security.manager=allow",
    "-Djava.security.policy=/tmp/all.policy",
    "-Djava.security.properties=/tmp/x",
    "-Djava.system.class.loader=Evil",
    "-Djava.class.path=/tmp",
    "-Djava.util.logging.config.file=/tmp/x",
    "-Djdk.net.hosts.file=/etc/shadow",
    "-Djdk.jfr.file=x",
    "-Dsun.boot.library.path=/tmp",
    "-Dcom.sun.management.jmxremote.port=9999",
    "-Dlog4j2.configurationFile=/etc/passwd",
    "-Dlog4j.configuration=http://evil/x",
    "-Dlogback.configurationFile=x",
    "-Djavax.net.ssl.trustStore=/tmp/x",
    "-Dspark.metrics.conf=/etc/passwd",
    "-Dspark.worker.resourcesFile=/etc/passwd",
    "-Dspark.deploy.recoveryDirectory=/tmp",
    "-Dspark.deploy.recoveryMode.factory=Evil",
    "-Dspark.ui.filters=Evil",
    "-Dspark.plugins=Evil",
    "-Dspark.driver.extraClassPath=x",
    "-Dspark.executor.extraJavaOptions=-XX:OnError=id",
    "-Dspark.jars.packages=evil:evil:1",
    "-Dspark.ssl.keyStore=x",
    "-Dspark.foo=/etc/passwd",
    "-Dspark.foo=file:/etc/passwd",
    "-Dspark.foo=http://evil/x",
    "-Dspark.foo=../x",
    # bare words become the main class
    "NoSuchMainClass",
    "-Dx=1 Evil",
    # sizes that are not sizes
    "-Xmx",
    "-Xmx2g,-XX:OnError=id",
    # what the shell or Spark's launcher would split differently
    "-Dx='a @/etc/passwd '",
    '-Dx="a b"',
    "-Dx=a\\ @/etc/passwd",
    "-Dx=$(id)",
    "-Dx=`id`",
    "-Dx=${IFS}",
    "-Dx=*",
    "-Dx=a;id",
    "-Dx=a|id",
    "-Dx=a\n-XX:OnError=id",
    "-Dx=a\0b",
    "-Dx=a\tb",
    "-Dx='unbalanced",
    # options of other kinds
    "-verbose:class",
    "-XX:",
    "-XX:+",
    "-XX:Name",
    "-D",
    "-D=x",
    "-x" * 3000,
]


@pytest.mark.parametrize("options", DANGEROUS)
def test_each_dangerous_form_is_refused(options: str) -> None:
    with pytest.raises(UnsafeJvmOption):
        check_options(options)


def test_a_dangerous_option_among_ordinary_ones_is_named() -> None:
    with pytest.raises(UnsafeJvmOption) as refused:
        check_options("-Xmx2g -Dspark.foo=bar -javaagent:/tmp/a.jar -XX:+UseG1GC")
    assert refused.value.token == "-javaagent:/tmp/a.jar"
