"""Recording a call, composing the QA file (a separate process) and retention."""
