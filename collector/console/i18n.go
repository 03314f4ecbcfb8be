package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"amos.example/amosd/collector"
)

// messages holds every text of the pages, by language then key.
var messages = map[string]map[string]string{
	"en": {
		"title": "Amos subsidy console", "signin": "Sign in", "signout": "Sign out", "token": "Maker or payer token",
		"token_help":   "The token is exchanged for a session cookie; it is never shown or stored in the browser.",
		"bad_token":    "That token belongs to no maker and not to the payer.",
		"server_error": "The page could not be computed; the server logged why.", "forbidden": "Not yours to see.",
		"not_found": "No such device.", "claim": "Claim", "month": "Month", "maker": "Maker", "makers": "All makers",
		"paid": "Paid", "held": "Held", "refused": "Refused", "late": "Late", "unregistered": "Unregistered",
		"attested": "Attested", "attested_share": "Attestation share", "devices": "Device keys", "amount": "Amount",
		"status": "Status", "provisional": "provisional", "closed": "closed", "closes_at": "Closes at", "closed_at": "Closed at",
		"stale":        "The month's moment has passed but it stays open: the attestation status list is stale.",
		"held_devices": "Held devices", "reasons": "Reasons", "device": "Device", "active_days": "Active days",
		"refused_by_reason": "Refused by reason", "reason": "Reason", "count": "Count", "none": "None.",
		"daily_chart": "Active devices per day", "hist_chart": "Devices by active days in the month",
		"threshold": "payment threshold", "day": "Day", "previous": "Previous month", "next": "Next month",
		"review": "Review queue", "release": "Release", "deny": "Deny", "by": "Decided by", "why": "Why",
		"decision": "Decision", "decided": "Decided", "outcome": "Outcome", "epochs": "Epochs", "epoch": "Epoch",
		"head_seq": "Head seq", "last_date": "Last date", "genesis": "Genesis", "accepted_days": "Accepted days",
		"months": "Months", "reported_days": "Reported days", "attestation": "Attestation", "not_attested": "not attested",
		"first_seen": "First seen", "serial_tag": "Serial tag", "model": "Model", "forked": "Forked", "yes": "yes", "no": "no",
		"total": "Total", "language": "Language", "month_closed_error": "The month has closed: held devices are reviewed before it closes.",
		"not_held_error": "That device is not held in this month.", "required_error": "Who decides and why are both required.",
		"more_held": "Only the first %d held devices are listed.", "chart_none": "No device in this month.",
		"back":               "Back to the claim",
		"rejected_by_reason": "Rejected records by reason", "records": "Records",
		"rejected_help":    "Records of the maker's device keys refused at ingest, dated in the month (a genesis by when it was minted): what the collector keeps of them. Records refused unread (bad format, bad signature, unknown device) are not kept, so not counted.",
		"risk":             "Risk signals against the fleet",
		"risk_help":        "Held device keys by signal (a key with two signals counts under both), and the maker's total variation distance from the rest of the fleet; flagged above the threshold when both sides have enough devices.",
		"dist_active_days": "Distance: active days", "dist_unlocks": "Distance: unlocks", "dist_threshold": "Threshold",
		"dist_flagged": "Flagged", "dist_none": "No device in this month.",
	},
	"zh": {
		"title": "Amos 补贴控制台", "signin": "登录", "signout": "退出", "token": "厂商或付款方令牌",
		"token_help":   "令牌仅用于换取会话 Cookie，不会显示，也不会保存在浏览器中。",
		"bad_token":    "该令牌不属于任何厂商，也不属于付款方。",
		"server_error": "页面无法生成，原因已记录在服务器日志中。", "forbidden": "无权查看。",
		"not_found": "没有该设备。", "claim": "申领", "month": "月份", "maker": "厂商", "makers": "全部厂商",
		"paid": "已付", "held": "暂扣", "refused": "拒付", "late": "迟到", "unregistered": "未登记",
		"attested": "已认证", "attested_share": "认证比例", "devices": "设备密钥", "amount": "金额",
		"status": "状态", "provisional": "暂定", "closed": "已结算", "closes_at": "结算时间", "closed_at": "已结算于",
		"stale":        "结算时间已过，但认证状态列表已过期，本月暂不结算。",
		"held_devices": "暂扣设备", "reasons": "原因", "device": "设备", "active_days": "活跃天数",
		"refused_by_reason": "按原因统计的拒付", "reason": "原因", "count": "数量", "none": "无。",
		"daily_chart": "每日活跃设备数", "hist_chart": "按本月活跃天数统计的设备数",
		"threshold": "付款门槛", "day": "日", "previous": "上个月", "next": "下个月",
		"review": "审核队列", "release": "放行", "deny": "拒付", "by": "决定人", "why": "理由",
		"decision": "决定", "decided": "已决定", "outcome": "结果", "epochs": "纪元", "epoch": "纪元",
		"head_seq": "链头序号", "last_date": "最后日期", "genesis": "创世记录", "accepted_days": "已接受天数",
		"months": "月份", "reported_days": "上报天数", "attestation": "密钥认证", "not_attested": "未认证",
		"first_seen": "首次出现", "serial_tag": "序列标签", "model": "型号", "forked": "链分叉", "yes": "是", "no": "否",
		"total": "合计", "language": "语言", "month_closed_error": "本月已结算：暂扣设备须在结算前审核。",
		"not_held_error": "该设备本月未被暂扣。", "required_error": "决定人和理由均为必填。",
		"more_held": "仅列出前 %d 台暂扣设备。", "chart_none": "本月没有设备。",
		"back":               "返回申领",
		"rejected_by_reason": "按原因统计的被拒记录", "records": "记录数",
		"rejected_help":    "该厂商设备密钥在接收时被拒、日期在本月的记录（创世记录按生成时间），即收集器保存下来的部分。未能读取即被拒的记录（格式错误、签名错误、未知设备）不保存，因此不计入。",
		"risk":             "相对整个设备群的风险信号",
		"risk_help":        "按信号统计的暂扣设备密钥（有两个信号的密钥在两处都计数），以及该厂商与其余设备群的总变差距离；双方设备都足够多且超过阈值时标记。",
		"dist_active_days": "距离：活跃天数", "dist_unlocks": "距离：解锁次数", "dist_threshold": "阈值",
		"dist_flagged": "已标记", "dist_none": "本月没有设备。",
	},
}

// reasons names the claim's reasons and signals (docs/eligibility.md) by language;
// a code not here is shown as it is.
var reasons = map[string]map[string]string{
	"en": {
		"no_certificate": "no maker certificate", "too_few_active_days": "too few active days",
		"serial_tag_paid_once": "serial tag already paid", "chain_fork": "chain fork",
		"maker_key_not_registered": "maker key not registered", "serial_tag_of_another_maker": "serial tag of another maker",
		"sold_after_month": "sold after the month", "denied": "denied by the payer", "serial_tag_not_registered": "serial tag not registered as sold",
		"released": "released by the payer", "not_attested": "not attested", "attestation_refused": "attestation refused",
		"attestation_revoked": "attestation revoked", "clone": "clone", "saturated": "saturated counters", "burst": "burst of days",
		"backfill": "backfilled days", "replayed_epoch": "replayed epoch", "many_keys": "many keys for one serial tag",
		"future_date": "date in the future", "stale": "date too old", "late": "month already closed",
		"implausible_mint": "implausible minting time", "bad_cert": "bad maker certificate", "unknown_maker": "unknown maker",
	},
	"zh": {
		"no_certificate": "无厂商证书", "too_few_active_days": "活跃天数不足",
		"serial_tag_paid_once": "序列标签已付款", "chain_fork": "记录链分叉",
		"maker_key_not_registered": "厂商密钥未登记", "serial_tag_of_another_maker": "序列标签属于其他厂商",
		"sold_after_month": "销售日期晚于本月", "denied": "付款方拒付", "serial_tag_not_registered": "序列标签未登记为已售",
		"released": "付款方放行", "not_attested": "未认证", "attestation_refused": "认证被拒",
		"attestation_revoked": "认证已吊销", "clone": "克隆", "saturated": "计数饱和", "burst": "天数突增",
		"backfill": "补报天数", "replayed_epoch": "纪元重放", "many_keys": "同一序列标签多个密钥",
		"future_date": "日期在未来", "stale": "日期过旧", "late": "月份已结算",
		"implausible_mint": "生成时间不合理", "bad_cert": "厂商证书无效", "unknown_maker": "未知厂商",
	},
}

// Reason names a reason or signal code.
func (l *locale) Reason(code string) string {
	if s, ok := reasons[l.Lang][code]; ok {
		return s
	}
	return code
}

// locale formats texts, numbers, amounts and dates for one language.
type locale struct {
	Lang   string // "en" or "zh"
	Other  string // the language to switch to
	offset int    // the reporting zone's UTC offset in minutes
}

// T returns the text of key.
func (l *locale) T(key string) string {
	if s, ok := messages[l.Lang][key]; ok {
		return s
	}
	return key
}

// HTMLLang is the lang attribute of the page.
func (l *locale) HTMLLang() string {
	if l.Lang == "zh" {
		return "zh-Hans"
	}
	return "en"
}

// OtherName names the language to switch to, in that language.
func (l *locale) OtherName() string {
	if l.Other == "zh" {
		return "简体中文"
	}
	return "English"
}

// Num groups the digits of n by thousands.
func (l *locale) Num(n int) string {
	s := strconv.Itoa(max(n, -n))
	var b strings.Builder
	if n < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Money is an amount in CNY.
func (l *locale) Money(n int) string {
	if l.Lang == "zh" {
		return l.Num(n) + " 元"
	}
	return "CNY " + l.Num(n)
}

// Pct is part of whole as a percentage with one decimal; "–" when whole is 0.
func (l *locale) Pct(part, whole int) string {
	if whole == 0 {
		return "–"
	}
	return strconv.FormatFloat(float64(part)*100/float64(whole), 'f', 1, 64) + " %"
}

// Dist formats a distance or threshold between 0 and 1, two decimals.
func (l *locale) Dist(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

// Time formats a Unix time in the reporting zone.
func (l *locale) Time(unix int64) string {
	if unix == 0 {
		return "–"
	}
	zone := time.FixedZone("", l.offset*60)
	t := time.Unix(unix, 0).In(zone)
	sign, off := '+', l.offset
	if off < 0 {
		sign, off = '-', -off
	}
	z := "UTC" + string(sign) + strconv.Itoa(off/60)
	if off%60 != 0 {
		z += ":" + strconv.Itoa(off%60)
	}
	if l.Lang == "zh" {
		return t.Format("2006年1月2日 15:04") + " (" + z + ")"
	}
	return t.Format("2 Jan 2006 15:04") + " (" + z + ")"
}

// Month names a month.
func (l *locale) Month(m collector.Month) string {
	if l.Lang == "zh" {
		return strconv.Itoa(m.Year) + "年" + strconv.Itoa(int(m.Month)) + "月"
	}
	return m.Month.String() + " " + strconv.Itoa(m.Year)
}

// Outcome names a claim outcome or status.
func (l *locale) Outcome(s string) string { return l.T(s) }

// locale picks the language: a lang query parameter (which is then kept in a cookie),
// else the lang cookie, else Accept-Language; English by default.
func (h *Handler) locale(w http.ResponseWriter, r *http.Request) *locale {
	lang := ""
	if q := r.URL.Query().Get("lang"); q == "en" || q == "zh" {
		lang = q
		h.setCookie(w, r, langCookie, q, 365*24*time.Hour)
	} else if c, err := r.Cookie(langCookie); err == nil && (c.Value == "en" || c.Value == "zh") {
		lang = c.Value
	} else {
		lang = fromAcceptLanguage(r.Header.Get("Accept-Language"))
	}
	other := "zh"
	if lang == "zh" {
		other = "en"
	}
	return &locale{Lang: lang, Other: other, offset: h.c.SalesZone()}
}

// fromAcceptLanguage returns "zh" or "en", whichever Accept-Language prefers, "en"
// when it names neither.
func fromAcceptLanguage(header string) string {
	best, bestQ := "en", -1.0
	for part := range strings.SplitSeq(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if (base == "zh" || base == "en") && q > 0 && q > bestQ { // q=0: not acceptable
			best, bestQ = base, q
		}
	}
	return best
}
