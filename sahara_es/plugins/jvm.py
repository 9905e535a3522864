"""Which JVM options a tenant may hand to a JVM a plugin starts: an allowlist.

A JVM option can run a shell command (``-XX:OnError=…``), load code (``-javaagent:…``,
``-agentpath:…``, ``-cp``, ``-Djava.system.class.loader=…``) or read a host file and show
it (``@argfile``: a line of the file that is not an option becomes the main class, and the
"Could not find or load main class <line>" error reaches the cluster's progress). So only
these forms are accepted, everything else is refused with the offending token named:

- ``-D<name>=<value>`` (or ``-D<name>``), unless the property loads code or names a file, a
  folder or a URL (``java.*``, ``jdk.*``, ``sun.*``, ``log4j*``, JMX, and any name ending in
  ``file``, ``path``, ``dir``, ``class``, ``conf``, ``url``…), and unless the value looks like
  a path or a URL;
- ``-Xmx``, ``-Xms``, ``-Xss``, ``-Xmn`` with a size (``512m``, ``2g``);
- ``-XX:+Name``, ``-XX:-Name``, ``-XX:Name=value``, unless ``Name`` runs something, writes or
  reads a file, dumps, logs, prints, unlocks diagnostic or experimental options, or records
  (``OnError``, ``AbortVMOnException``, ``VMOptionsFile``, ``HeapDumpPath``,
  ``UnlockDiagnosticVMOptions``, ``StartFlightRecording``…).

A bare word is refused (it would become the main class), as are ``@argfiles``, agents,
class and module paths, ``-jar`` and ``-Xlog`` (which writes files).

The same text is split into words by more than one program before a JVM sees it (Spark's
launcher parses ``SPARK_DAEMON_JAVA_OPTS`` with quotes; ``bin/spark-class`` expands
``SPARK_LAUNCHER_OPTS`` unquoted, with globbing), and they disagree on quotes: ``-Dx='a
@/etc/passwd '`` is one harmless word to one and an argfile to the other. So a token may hold
only characters that every splitter reads the same way: no quotes, backslashes, ``$``,
backticks, glob characters or control characters.
"""

from __future__ import annotations

import re
import shlex

MAX_LENGTH = 4096

_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.,:=+\-/%@#~^]+")
_SIZE = re.compile(r"\d+[kKmMgGtT]?")
_PROPERTY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_XX = re.compile(r"-XX:(?:(?P<flag>[+-])(?P<flag_name>[A-Za-z][A-Za-z0-9_]*)"
                 r"|(?P<name>[A-Za-z][A-Za-z0-9_]*)=(?P<value>.*))")

HEAP_OPTIONS = ("-Xmx", "-Xms", "-Xss", "-Xmn")

ALLOWED_PROPERTIES = frozenset({
    "file.encoding", "java.awt.headless", "java.net.preferIPv4Stack",
    "java.net.preferIPv6Addresses", "user.timezone", "user.language", "user.country",
})
"""Harmless properties that the rules below would refuse by their prefix or name."""

DENIED_PROPERTY_PREFIXES = (
    "java.", "javax.", "jdk.", "sun.", "com.sun.", "com.ibm.", "log4j", "logback.",
    "org.apache.logging.", "jna.", "jnr.", "io.netty.", "jmx.", "javaagent",
)
"""The JVM's own properties (library and class paths, class loaders, security managers and
policies, JMX, logging configuration…), which load code or read files at start."""

DENIED_NAME_ENDINGS = (
    "file", "files", "path", "paths", "dir", "dirs", "directory", "directories", "home",
    "class", "classes", "classname", "loader", "factory", "conf", "config", "configuration",
    "url", "uri", "urls", "location", "jar", "jars", "library", "libraries", "agent", "agents",
    "plugin", "plugins", "listener", "listeners", "filter", "filters", "provider",
    "providers", "store", "policy", "codebase", "script", "command", "cmd", "options", "opts",
    "manager", "packages", "repositories", "ivy",
)
"""A property whose last word (any of its dot-separated segments, lower-cased) ends so names
a file, a folder, a URL, a class to load or options of another program."""

DENIED_XX = frozenset({
    "OnError", "OnOutOfMemoryError", "AbortVMOnException", "AbortVMOnExceptionMessage",
    "VMOptionsFile", "Flags", "CompileCommandFile", "CompileCommand", "CompileOnly",
    "ErrorFile", "HeapDumpPath", "HeapDumpOnOutOfMemoryError", "LogFile", "LogVMOutput",
    "UnlockDiagnosticVMOptions", "UnlockExperimentalVMOptions", "UnlockCommercialFeatures",
    "StartFlightRecording", "FlightRecorder", "FlightRecorderOptions", "SharedArchiveFile",
    "ArchiveClassesAtExit", "SharedClassListFile", "DumpLoadedClassList", "EnableJVMCI",
    "ShowMessageBoxOnError", "CrashOnOutOfMemoryError", "CreateCoredumpOnCrash",
    "StartAttachListener", "EnableDynamicAgentLoading", "PerfDataSaveToFile",
})
"""``-XX`` options that run a command, read or write a file, or open the JVM up."""

DENIED_XX_WORDS = (
    "File", "Path", "Dir", "Dump", "Log", "Print", "Trace", "Unlock", "Flight", "Archive",
    "Agent", "JVMCI", "Shared", "Command", "CRaC", "Replay", "Directive",
    "Abort", "OnError", "OnOutOfMemory", "Attach", "Library", "Class", "Module", "Boot",
)
"""Parts of ``-XX`` names that say the same of options not listed above (new JDKs add them)."""

ALLOWED_XX = frozenset({"ExitOnOutOfMemoryError", "UseCompressedClassPointers",
                        "ClassUnloading", "MaxDirectMemorySize"})
"""Harmless ``-XX`` names the words above would refuse."""


class UnsafeJvmOption(ValueError):
    """An option that is not allowed; ``token`` is the offending word."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(f"{token!r} is not allowed: {reason}")
        self.token = token
        self.reason = reason


def _property_denied(name: str) -> str | None:
    if name in ALLOWED_PROPERTIES:
        return None
    lowered = name.lower()
    if lowered.startswith(DENIED_PROPERTY_PREFIXES):  # all lower case
        return "a JVM, logging or JMX property (they load code or read files at start)"
    for segment in re.split(r"[._\-]", lowered):
        if segment.endswith(DENIED_NAME_ENDINGS):
            return "a property naming a file, folder, URL, class or other program's options"
    return None


def _value_denied(value: str) -> str | None:
    if value.startswith(("/", "~", "./", "../", "@")) or ":/" in value or ".." in value:
        return "a property value may not name a path or a URL"
    return None


def _xx_denied(name: str) -> str | None:
    if name in ALLOWED_XX:
        return None
    if name in DENIED_XX or any(word in name for word in DENIED_XX_WORDS):
        return (f"-XX:{name} runs commands, reads or writes files, or unlocks options;"
                " allowed: -XX flags for GC, heap and compilation tuning")
    return None


def check_token(token: str) -> None:
    """``UnsafeJvmOption`` unless ``token`` is one of the allowed forms."""
    if not _SAFE_TOKEN.fullmatch(token):
        raise UnsafeJvmOption(token, "only letters, digits and _.,:=+-/%@#~^ may appear in"
                                     " an option (no quotes, spaces, $, \\, * or ?)")
    if token.startswith("-D"):
        name, _, value = token[2:].partition("=")
        if not _PROPERTY.fullmatch(name):
            raise UnsafeJvmOption(token, "-D needs a property name: -D<name>=<value>")
        reason = _property_denied(name) or _value_denied(value)
        if reason:
            raise UnsafeJvmOption(token, reason)
        return
    for heap in HEAP_OPTIONS:
        if token.startswith(heap):
            if not _SIZE.fullmatch(token[len(heap):]):
                raise UnsafeJvmOption(token, f"{heap} needs a size, as {heap}512m")
            return
    if token.startswith("-XX:"):
        matched = _XX.fullmatch(token)
        if matched is None:
            raise UnsafeJvmOption(token, "use -XX:+Name, -XX:-Name or -XX:Name=value")
        name = matched["flag_name"] or matched["name"]
        reason = _xx_denied(name)
        if reason:
            raise UnsafeJvmOption(token, reason)
        value = matched["value"] or ""
        if "/" in value or value.startswith(("@", "~", ".")):
            raise UnsafeJvmOption(token, "an -XX value may not name a path")
        return
    if token.startswith("@"):
        raise UnsafeJvmOption(token, "an @argfile makes the JVM read a file")
    if not token.startswith("-"):
        raise UnsafeJvmOption(token, "a bare word would become the JVM's main class")
    raise UnsafeJvmOption(token, "allowed: -D<name>=<value>, -Xmx/-Xms/-Xss/-Xmn<size>,"
                                 " -XX:[+-]Name and -XX:Name=value")


def check_options(text: str) -> list[str]:
    """The words of ``text`` if every one is an allowed JVM option; else ``UnsafeJvmOption``
    naming the first that is not."""
    if len(text) > MAX_LENGTH:
        raise UnsafeJvmOption(text[:40] + "…", f"longer than {MAX_LENGTH} characters")
    for character in text:
        if character in "\0\n\r" or (not character.isprintable() and character != " "):
            raise UnsafeJvmOption(text, "control characters (NUL, newline…) are not allowed")
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise UnsafeJvmOption(text, f"cannot be split into words: {error}") from None
    # Quoting, if any, would be read differently by the launcher and by the shell.
    if words != text.split():
        quoted = next((w for w in text.split() if not _SAFE_TOKEN.fullmatch(w)), text)
        raise UnsafeJvmOption(quoted, "quotes and backslashes are not allowed")
    for word in words:
        check_token(word)
    return words
