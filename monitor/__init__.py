"""vitals-monitor: real-time monitoring of patient vital signs with a MedicalLSTM."""

__version__ = "0.1.0"
