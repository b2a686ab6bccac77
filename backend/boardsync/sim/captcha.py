"""The slider-captcha page the simulated upstream serves as a ban signal (HTTP 200, HTML).

Users report that a ban can come back as East Money's slider captcha ("拖动滑块完成拼图")
with status 200 instead of JSON (EASTMONEY_API.md section 9, akshare #6214; section 13: "a 200
that is not JSON"). The page is deliberately unlike the simulator's ``HTML_BLOCK`` fault page
so a test can tell a ban from a random fault; a client can only tell it is not JSON.
"""

from __future__ import annotations

CAPTCHA_PAGE = (
    '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1">'
    "<title>安全验证 - 东方财富网</title>"
    '<link rel="stylesheet" href="https://emcaptcha.eastmoney.com/static/css/slider.css">'
    "</head><body>"
    '<div class="em-captcha" id="em-captcha">'
    '<div class="em-captcha-title">请完成安全验证</div>'
    '<div class="em-captcha-tip">检测到您的网络访问异常，拖动下方滑块完成拼图后继续访问</div>'
    '<div class="em-captcha-img"><img class="bg" alt="" src="data:image/png;base64,">'
    '<img class="piece" alt="" src="data:image/png;base64,"></div>'
    '<div class="em-captcha-slider"><div class="em-captcha-track"></div>'
    '<div class="em-captcha-handle" role="slider" aria-label="向右拖动滑块">&gt;</div>'
    '<span class="em-captcha-label">向右拖动滑块填充拼图</span></div>'
    '<div class="em-captcha-foot">验证码 ID: sim-ctx-0000 · 遇到问题？'
    '<a href="https://help.eastmoney.com/">意见反馈</a></div></div>'
    '<script src="https://emcaptcha.eastmoney.com/static/js/em_captcha.js"></script>'
    "<script>emCaptcha.init({el:'#em-captcha',type:'slide',"
    "onSuccess:function(){location.reload()}});</script>"
    "</body></html>"
).encode()

#: The Content-Type the captcha page is served with.
CAPTCHA_TYPE = "text/html; charset=utf-8"
