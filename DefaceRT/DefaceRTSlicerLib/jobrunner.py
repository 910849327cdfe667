"""Run a :class:`.jobs.JobCommand` in a ``QProcess`` with a progress dialog and Cancel (needs Slicer's Qt).

The pattern of SlicerNNUNet's process wrapper: the job is a separate Python
process, its output is read as it arrives, progress lines move the dialog's
bar, Cancel kills the process, and ``onFinished(returnCode, stdout, stderr)``
is called once, on the GUI thread, when it ends (return code None when
cancelled or when it could not start). The module disables its action
buttons while :attr:`JobRunner.running` is true.
"""

import qt

from . import jobs


class JobRunner:
    def __init__(self, parent=None) -> None:
        self.parent = parent
        self.process = None
        self.dialog = None
        self._stdout = []
        self._stderr = ""
        self._onFinished = None
        self._cancelled = False

    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self, command: "jobs.JobCommand", onFinished) -> None:
        if self.running:
            raise RuntimeError("a job is already running")
        self._stdout, self._stderr, self._cancelled = [], "", False
        self._onFinished = onFinished
        process = qt.QProcess()
        environment = qt.QProcessEnvironment.systemEnvironment()
        for key, value in command.env.items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self._onStdout)
        process.readyReadStandardError.connect(self._onStderr)
        process.finished.connect(self._onProcessFinished)
        process.errorOccurred.connect(self._onError)
        self.process = process
        self.dialog = qt.QProgressDialog(command.description or "Working...", "Cancel", 0, 0, self.parent)
        self.dialog.setWindowTitle(command.description or "DefaceRT")
        self.dialog.setWindowModality(qt.Qt.NonModal)
        self.dialog.setMinimumDuration(0)
        self.dialog.canceled.connect(self.cancel)
        self.dialog.show()
        process.start(command.program, command.args)

    def cancel(self) -> None:
        if self.process is not None:
            self._cancelled = True
            self.process.kill()

    @staticmethod
    def _text(data) -> str:
        raw = data.data() if hasattr(data, "data") else bytes(data)  # PythonQt QByteArray -> bytes
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)

    def _onStdout(self) -> None:
        self._stdout.append(self._text(self.process.readAllStandardOutput()))

    def _onStderr(self) -> None:
        text = self._text(self.process.readAllStandardError())
        self._stderr += text
        for line in text.splitlines():
            progress = jobs.parseProgress(line)
            if progress is not None and self.dialog is not None:
                done, total, message = progress
                self.dialog.setMaximum(max(total, 1))
                self.dialog.setValue(done)
                self.dialog.setLabelText(message)

    def _onError(self, error) -> None:
        if error == qt.QProcess.FailedToStart:
            self._finish(None)

    def _onProcessFinished(self, exitCode, exitStatus=None) -> None:
        self._onStdout()
        self._onStderr()
        self._finish(None if self._cancelled else int(exitCode))

    def _finish(self, returnCode) -> None:
        if self.process is None:
            return
        self.process = None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog = None
        callback, self._onFinished = self._onFinished, None
        if callback is not None:
            callback(returnCode, "".join(self._stdout), self._stderr)
