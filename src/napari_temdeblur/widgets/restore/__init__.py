"""The Restore dock: a trained run applied to burst layers, with SSIM / PSNR, an SSIM map and Compare."""

from ._widget import RestoreWidget

__all__ = ["RestoreWidget"]
